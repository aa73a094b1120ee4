// The cert-manager controllers agentnet's rig runs: its Issuers, Certificates and the
// CertificateRequests that SelfSigned and CA issuers sign, from cert-manager's own packages.
//
// cert-manager's release binary (module .../cmd/controller) is not served by the Go module proxy,
// only the root module is; tests/certmanager/build.sh builds this file inside a copy of it. ACME,
// Vault, Venafi, the ingress and gateway shims, CSRs and leader election are left out: agentnet's
// networks use none of them.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	// Each package registers its controller with controllerpkg (init).
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	// The issuer kinds the issuers controller checks (init registers each).
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
)

var controllers = []string{
	issuers.ControllerName,
	trigger.ControllerName, keymanager.ControllerName, requestmanager.ControllerName,
	issuing.ControllerName, readiness.ControllerName, revisionmanager.ControllerName,
	approver.ControllerName, crselfsigned.CRControllerName, crca.CRControllerName,
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server")
	probe := flag.String("health-probe-bind-address", "127.0.0.1:9403", "answers /readyz once the caches are synced")
	workers := flag.Int("workers", 2, "workers per controller")
	ownerRef := flag.Bool("enable-certificate-owner-ref", false,
		"make each Certificate the owner of the Secret it writes (cert-manager's flag of that name)")
	flag.Parse()
	logf.InitLogs()
	if err := run(*kubeconfig, *probe, *workers, *ownerRef); err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, probe string, workers int, ownerRef bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log, "cert-manager")
	// cert-manager's defaults (internal/apis/config/controller/v1alpha1/defaults.go).
	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig: kubeconfig, KubernetesAPIQPS: 20, KubernetesAPIBurst: 50,
		IssuerOptions: controllerpkg.IssuerOptions{ClusterResourceNamespace: "kube-system"},
		CertificateOptions: controllerpkg.CertificateOptions{
			EnableOwnerRef:                           ownerRef,
			CopiedAnnotationPrefixes:                 []string{"*", "-kubectl.kubernetes.io/"},
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		return err
	}
	var loops []controllerpkg.Interface
	for _, name := range controllers {
		construct, ok := controllerpkg.Known()[name]
		if !ok {
			return fmt.Errorf("controller %s is not registered", name)
		}
		loop, err := construct(factory)
		if err != nil {
			return fmt.Errorf("controller %s: %w", name, err)
		}
		loops = append(loops, loop)
	}
	// The controllers asked for their informers while they were made: start them all.
	shared, err := factory.Build()
	if err != nil {
		return err
	}
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.SharedInformerFactory.Start(ctx.Done())
	for informer, synced := range shared.SharedInformerFactory.WaitForCacheSync(ctx.Done()) {
		if !synced {
			return fmt.Errorf("informer %v did not sync", informer)
		}
	}
	for informer, synced := range shared.KubeSharedInformerFactory.WaitForCacheSync(ctx.Done()) {
		if !synced {
			return fmt.Errorf("informer %s did not sync", informer)
		}
	}
	var wg sync.WaitGroup
	for _, loop := range loops {
		wg.Go(func() {
			if err := loop.Run(workers, ctx); err != nil {
				logf.Log.Error(err, "controller stopped")
			}
		})
	}
	server := &http.Server{Addr: probe, ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })}
	go func() { _ = server.ListenAndServe() }()
	<-ctx.Done()
	_ = server.Close()
	wg.Wait()
	return nil
}
