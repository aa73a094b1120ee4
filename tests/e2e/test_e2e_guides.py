"""Guide 000's verify_deployment.sh against the components' Services on real pods.

The example network is applied as a user would; each component's Service is reached through
`kubectl port-forward`, and curl maps `<component>.localhost` to that forward (`connect-to` in a
curlrc of its own, as cluster DNS maps a Service name), so the script runs word for word with only
the host replaced."""

from __future__ import annotations

import os
import subprocess
from contextlib import ExitStack

import yaml

from agentnet_operator import names
from agentnet_runtime.catalogue import COMPONENT_NAMES, HTTP_PORT
from e2e_support import E2E, example_network, get_network, is_ready, port_forward
from guides_support import verify_deployment_script
from rig import wait_for

pytestmark = E2E
NETWORK = "ramanujan"


def test_the_guides_verify_deployment_script_passes_against_the_components_services(
        k8s, kubectl, rig_bin, kubeconfig, installed_operator, real_namespace, runtime_image, tmp_path):
    ns = real_namespace
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(example_network(runtime_image)))
    wait_for(lambda: is_ready(get_network(k8s, ns, NETWORK)), 600, "the example network to be Ready")
    with ExitStack() as forwards:
        ports = {name: forwards.enter_context(port_forward(rig_bin / "kubectl", kubeconfig, ns,
                                                           f"svc/{names.component_name(NETWORK, name)}", HTTP_PORT))
                 for name in COMPONENT_NAMES}  # fmt: skip
        (tmp_path / ".curlrc").write_text(
            "".join(f'connect-to = "{name}.localhost:80:127.0.0.1:{port}"\n' for name, port in ports.items()))
        script = tmp_path / "verify_deployment.sh"
        script.write_text(verify_deployment_script("${component}.localhost"))
        result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=300,
                                env={**os.environ, "CURL_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ All 11 components verified successfully!" in result.stdout
    assert result.stdout.count(": 200 OK") == len(COMPONENT_NAMES)
