"""Managed NATS users: one per identity of agentnet_runtime.permissions, with exactly its grant.

Each identity's password is derived from the network's one stored secret (the managed NATS
Secret's `password` key, made once by the operator) with HMAC-SHA256, so every reconcile
renders the same users without storing state per identity, and one identity's password tells
nothing about another's.

The server config carries every user; the pods get only passwords: a component its own
key of the NATS Secret, the agent pods the agents' Secret (one key per pod; each pod takes
the one of its ordinal, agentnet_runtime.config.NatsAuth.from_dir). The pods of a StatefulSet
share one template, so every agent pod mounts every agent pod's password: the server holds each
pod's connection to its own agents' subjects, but a pod that reads the other keys could log in
as another agent pod (components cannot: each mounts its own key only).
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

from agentnet_operator.children import topology_plan
from agentnet_operator.model import AgentNetwork
from agentnet_runtime import permissions
from agentnet_runtime.permissions import Grant


# (every agent's neighbours, agents per pod, components): what decides the users and their grants
Identities = tuple[tuple[tuple[int, ...], ...], int, tuple[str, ...]]


def _identities(network: AgentNetwork) -> Identities:
    spec = network.spec
    neighbours = topology_plan(spec).neighbours  # who reads whose heartbeats
    return neighbours, spec.agents_per_pod, tuple(component.name for component in spec.effective_components)


def network_grants(network: AgentNetwork) -> Mapping[str, Grant]:
    """Every NATS identity of the network: its agent pods, the components that use NATS, the operator."""
    return _grants(_identities(network))


# Cached: every reconcile renders the same users again (1,000 agent pods: 1,000 users).
@lru_cache(maxsize=64)
def _grants(identities: Identities) -> Mapping[str, Grant]:
    neighbours, per_pod, components = identities
    return MappingProxyType(permissions.grants(neighbours, per_pod, components))


def password(secret: str, identity: str) -> str:
    """The password of `identity`, derived from the network's secret (43 characters of [A-Za-z0-9_-])."""
    digest = hmac.digest(secret.encode(), identity.encode(), "sha256")
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@lru_cache(maxsize=64)
def _passwords(identities: Identities, secret: str) -> Mapping[str, str]:
    return MappingProxyType({identity: password(secret, identity) for identity in _grants(identities)})


def agent_passwords(network: AgentNetwork, secret: str) -> dict[str, str]:
    """Identity -> password of each agent pod (the agents' Secret)."""
    passwords = _passwords(_identities(network), secret)
    return {i: p for i, p in passwords.items() if i.startswith(permissions.AGENT_POD_PREFIX)}


def other_passwords(network: AgentNetwork, secret: str) -> dict[str, str]:
    """Identity -> password of each component using NATS and of the operator (keys of the NATS Secret)."""
    passwords = _passwords(_identities(network), secret)
    return {i: p for i, p in passwords.items() if not i.startswith(permissions.AGENT_POD_PREFIX)}


def _permissions(grant: Grant) -> dict:
    # An empty allow list would allow everything: nothing to publish is a deny of every subject.
    publish = {"allow": list(grant.publish)} if grant.publish else {"deny": [">"]}
    return {"publish": publish, "subscribe": {"allow": list(grant.subscribe)}, "allow_responses": grant.respond}


def authorization(network: AgentNetwork, secret: str) -> str:
    """The server config's `authorization` block (NATS config accepts JSON): every identity a user
    with its permissions."""
    return _authorization(_identities(network), secret)


@lru_cache(maxsize=64)
def _authorization(identities: Identities, secret: str) -> str:
    passwords = _passwords(identities, secret)
    users = [json.dumps({"user": identity, "password": passwords[identity], "permissions": _permissions(grant)})
             for identity, grant in _grants(identities).items()]  # fmt: skip
    return "authorization {\n  users: [\n    " + ",\n    ".join(users) + "\n  ]\n}\n"  # one user a line
