"""Managed NATS users: one per identity, each pod mounting only its own password (the server
side of it, a real nats-server refusing, is tests/runtime/test_runtime_permissions.py)."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from conftest import PASSWORD, SECRETS, load_example, network_from

from agentnet_operator import children, names, nats_auth
from agentnet_operator.children import desired_children
from agentnet_runtime import permissions
from agentnet_runtime.catalogue import COMPONENT_NAMES


def objects_of(body: dict[str, Any], password: str = PASSWORD) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o
            for o in desired_children(network_from(body), **{**SECRETS, "nats_password": password})}


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def credentials_volume(template: dict[str, Any]) -> dict[str, Any] | None:
    found = [v for v in template["spec"]["volumes"] if v["name"] == names.VOLUME_NATS_CREDENTIALS]
    return found[0]["secret"] if found else None


def server_users(objects) -> dict[str, dict[str, Any]]:
    config = secret_data(objects[("Secret", "ramanujan-nats")])[names.NATS_SECRET_CONFIG]
    assert "authorization {\n  users: [\n" in config
    users = [json.loads(line.strip().rstrip(",")) for line in config.splitlines() if line.strip().startswith('{"user"')]
    return {user["user"]: user for user in users}


def test_every_identity_is_a_user_with_its_grant_and_its_own_password() -> None:
    body = load_example("network.yaml")  # 9 agents, one per pod, every component
    objects = objects_of(body)
    users = server_users(objects)
    nats_users = [c for c in COMPONENT_NAMES if permissions.component_grant(c) is not None]
    assert set(users) == {*(f"agents-{k}" for k in range(9)), *nats_users, permissions.OPERATOR}
    assert "egraph-service" not in users and "duck-colors" not in users  # HTTP only: no NATS user
    agents = secret_data(objects[("Secret", "ramanujan-nats-agents")])
    others = secret_data(objects[("Secret", "ramanujan-nats")])
    for identity, user in users.items():
        assert user["password"] == (agents if identity.startswith("agents-") else others)[identity]
        grant = permissions.grants(children.topology_plan(network_from(body).spec).neighbours, 1, COMPONENT_NAMES)[identity]
        assert user["permissions"]["subscribe"] == {"allow": list(grant.subscribe)}
        assert user["permissions"]["allow_responses"] == grant.respond
    passwords = [user["password"] for user in users.values()]
    assert len(set(passwords)) == len(passwords) and all(re.fullmatch(r"[A-Za-z0-9_-]{43}", p) for p in passwords)
    assert not set(agents) & set(others)  # an agent pod's Secret holds agent passwords only
    assert PASSWORD not in json.dumps(users)  # the network's secret is in no user's hands
    assert users["crdt-service"]["permissions"]["publish"] == {"deny": [">"]}  # it only answers


def test_passwords_are_stable_and_follow_the_networks_secret() -> None:
    body = load_example("network.yaml")
    first, again = server_users(objects_of(body)), server_users(objects_of(body))
    assert first == again  # a reconcile renders the same users: nothing to apply
    other = server_users(objects_of(body, password="q" * 24))
    assert all(first[i]["password"] != other[i]["password"] for i in first)
    assert nats_auth.password(PASSWORD, "agents-0") == first["agents-0"]["password"]


def test_each_pod_mounts_only_its_own_credentials() -> None:
    objects = objects_of(load_example("network.yaml"))
    agents = objects[("StatefulSet", "ramanujan-agents")]["spec"]["template"]
    assert credentials_volume(agents) == {"secretName": "ramanujan-nats-agents"}  # each pod takes its ordinal's key
    for component in COMPONENT_NAMES:
        source = credentials_volume(objects[("Deployment", f"ramanujan-{component}")]["spec"]["template"])
        if permissions.component_grant(component) is None:
            assert source is None, component
        else:
            assert source == {"secretName": "ramanujan-nats", "items": [{"key": component, "path": component}]}


def test_scaling_agents_changes_users_and_restarts_nats_but_not_the_agents_template() -> None:
    """A new agent pod needs a user: the server config changes and the NATS pods roll (nats-server does not
    re-read its file); the agents' template stays the same (their Secret is mounted whole), so only the new
    pods start."""
    body = load_example("network.yaml")
    before = objects_of(body)
    body["spec"]["agents"] = 12
    body["spec"]["topology"] = {"kind": "ring"}
    after = objects_of(body)
    assert "agents-11" in server_users(after) and "agents-11" not in server_users(before)

    def nats_digest(objects) -> str:
        return objects[("StatefulSet", "ramanujan-nats")]["spec"]["template"]["metadata"]["annotations"][names.ANNOTATION_CONFIG_DIGEST]

    assert nats_digest(before) != nats_digest(after)
    volumes = [credentials_volume(o[("StatefulSet", "ramanujan-agents")]["spec"]["template"]) for o in (before, after)]
    assert volumes[0] == volumes[1]
    body["spec"]["image"] = "registry.local/agentnet:other"  # no user or grant changes
    assert nats_digest(objects_of(body)) == nats_digest(after)


def test_a_new_topology_changes_who_hears_whose_heartbeats() -> None:
    """Same agents, other neighbours: the grants follow the topology (and the NATS pods roll to read them)."""
    body = load_example("network.yaml")
    body["spec"]["topology"] = {"kind": "ring"}
    ring = server_users(objects_of(body))
    body["spec"]["topology"] = {"kind": "complete"}
    complete = server_users(objects_of(body))
    assert ring["agents-0"]["permissions"]["subscribe"]["allow"] == [
        "agent.0.*", "agent.1.heartbeat", "agent.8.heartbeat", "broadcast.heartbeat", "_INBOX.agents-0.>"]
    assert complete["agents-0"]["permissions"]["subscribe"]["allow"] == [
        "agent.0.*", *(f"agent.{n}.heartbeat" for n in range(1, 9)), "broadcast.heartbeat", "_INBOX.agents-0.>"]
    assert ring["agents-0"]["permissions"]["publish"] == complete["agents-0"]["permissions"]["publish"]


def test_external_nats_keeps_the_users_credentials() -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in children.desired_children(network_from(load_example("external-nats.yaml")))}
    for kind, name in objects:
        if kind in ("Deployment", "StatefulSet"):
            assert credentials_volume(objects[(kind, name)]["spec"]["template"]) == {"secretName": "agentnet-nats"}, name
