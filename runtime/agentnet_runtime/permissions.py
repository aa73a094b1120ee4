"""Who may publish and subscribe to what on NATS: one grant per identity, the one table of it.

An identity is a NATS user: each agent pod (`agents-<ordinal>`, hosting a block of agent ids),
each component that uses NATS (by its name), and the operator's autoscaler. Grants are built
from the subject names in agent/subjects.py and the JetStream names in natsclient.py, so a
subject the runtime uses and the permission that allows it have one source. The operator
renders them into the managed nats-server's `authorization { users [...] }` (nats_auth.py there).

`agent.{id}.state|sync|ack` are addressed to agent `id`, so anyone in the network may publish
them; `agent.{id}.heartbeat` speaks *as* agent `id`, so only the pod hosting `id` may, and only
the pods hosting its neighbours may read it (subjects.py: heartbeats go to neighbours). Observers
(agent-orchestrator, dashboard) read `agents.heartbeat`, which every agent pod publishes. An
identity answers requests (sync replies, merges) through `respond`: NATS then lets it publish
to the reply subject of a request it received, and to no other inbox. Replies to an identity's
own requests come to its own inbox prefix (`_INBOX.<identity>.`), which no one else may read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from agentnet_runtime import natsclient
from agentnet_runtime.agent import subjects

AGENT_POD_PREFIX = "agents-"
OPERATOR = "agentnet-operator"  # the operator's autoscaler, reading work-queue lag
JS_API = "$JS.API"
JS_ACK = "$JS.ACK"
ANY = "*"  # one subject token, e.g. any agent id


@dataclass(frozen=True)
class Grant:
    """What one identity may do on NATS; subjects may hold NATS wildcards (`*` one token, `>` the rest)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    respond: bool = False  # may publish to the reply subject of a request it received


def agent_pod(ordinal: int) -> str:
    """The identity of agent pod `ordinal` (a StatefulSet ordinal; it hosts a block of ids)."""
    return f"{AGENT_POD_PREFIX}{ordinal}"


def inbox_prefix(identity: str) -> str:
    """Where the replies to an identity's own requests come (nats-py's `inbox_prefix`)."""
    if not identity or "." in identity or any(c in identity for c in " *>"):
        raise ValueError(f"identity {identity!r}: must be one NATS subject token (no '.', ' ', '*', '>')")
    return f"_INBOX.{identity}"


def _inbox(identity: str) -> str:
    return f"{inbox_prefix(identity)}.>"


def _to_agents(*templates: str) -> tuple[str, ...]:
    """Subjects addressed to any agent (or observer id)."""
    return tuple(template.format(id=ANY) for template in templates)


def _stream(name: str) -> tuple[str, ...]:
    """Look a JetStream stream up and create it when missing (JetStreamKeeper, Transport.store)."""
    return (f"{JS_API}.STREAM.INFO.{name}", f"{JS_API}.STREAM.CREATE.{name}")


def _consumer(stream: str, durable: str) -> tuple[str, ...]:
    """Keep a durable pull consumer, pull from it and acknowledge what it delivers."""
    return (
        f"{JS_API}.CONSUMER.INFO.{stream}.{durable}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}.>",  # nats-py names the filter subject when there is one
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{durable}",  # servers before 2.9
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"{JS_ACK}.{stream}.{durable}.>",
    )


def _work_lag() -> tuple[str, ...]:
    """Read natsclient.work_lag of every work-queue component."""
    stream = natsclient.WORK_STREAM
    return (f"{JS_API}.STREAM.INFO.{stream}", f"{JS_API}.CONSUMER.INFO.{stream}.{ANY}")


def remote_neighbours(neighbours: Sequence[Sequence[int]], hosted: Sequence[int]) -> tuple[int, ...]:
    """Neighbours of the hosted agents that live in other pods: their heartbeats come over NATS."""
    mine = set(hosted)
    return tuple(sorted({n for agent in hosted for n in neighbours[agent] if n not in mine}))


def agent_grant(identity: str, hosted: Sequence[int], remote: Iterable[int]) -> Grant:
    """An agent pod hosting `hosted`: it speaks only as them, reads only what is addressed to them and the
    heartbeats of their `remote` neighbours (remote_neighbours)."""
    return Grant(
        publish=(
            *_to_agents(subjects.STATE, subjects.SYNC, subjects.ACK),
            *(subjects.for_agent(subjects.HEARTBEAT, i) for i in hosted),
            subjects.HEARTBEATS,
            subjects.NETWORK_STATUS,
            subjects.TIMELINE_EVENTS,
            f"{JS_API}.STREAM.CREATE.{natsclient.TIMELINE_STREAM}",  # Transport.store makes a missing stream
        ),
        subscribe=(
            *(subjects.inbox(i) for i in hosted),
            *(subjects.for_agent(subjects.HEARTBEAT, n) for n in remote),
            subjects.BROADCAST_HEARTBEAT,
            _inbox(identity),
        ),
        respond=True,  # sync replies
    )


def _observer(identity: str, observer: int, publish: Iterable[str] = (), subscribe: Iterable[str] = ()) -> Grant:
    """A component keeping a NetworkReplica as agent id `observer`: it pulls from agents (sync requests),
    pushes to them (state) and reads what is addressed to its id."""
    return Grant(
        publish=(*_to_agents(subjects.SYNC, subjects.STATE), *publish),
        subscribe=(subjects.inbox(observer), *subscribe, _inbox(identity)),
    )


def _work_queue(component: str) -> Grant:
    colour = component.removeprefix("stream-").upper()
    sender = subjects.STREAM_IDS[colour]
    stream = natsclient.WORK_STREAM
    return Grant(
        publish=(
            natsclient.component_work_subject(component),  # POST .../submit queues terms
            subjects.DERIVED.format(colour=colour.lower()),
            *_to_agents(subjects.STATE),
            *_stream(stream),
            *_consumer(stream, natsclient.work_consumer(component)),
        ),
        subscribe=(subjects.for_agent(subjects.ACK, sender), _inbox(component)),
    )


def component_grant(component: str) -> Grant | None:
    """The grant of a component; None for one that does not use NATS (it gets no NATS user)."""
    if component.startswith("stream-"):
        return _work_queue(component)
    if component == "agent-orchestrator":
        return _observer(component, subjects.ORCHESTRATOR_ID, publish=(subjects.BROADCAST_HEARTBEAT, subjects.NETWORK_STATUS),
                         subscribe=(subjects.HEARTBEATS,))  # fmt: skip
    if component == "dashboard":
        return _observer(component, subjects.DASHBOARD_ID, publish=(subjects.BROADCAST_HEARTBEAT, *_work_lag()),
                         subscribe=(subjects.HEARTBEATS, subjects.NETWORK_STATUS, subjects.TIMELINE_EVENTS,
                                    subjects.TIMELINE_RETENTION))  # fmt: skip
    if component == "skill-verification":
        return _observer(component, subjects.VERIFIER_ID, subscribe=(subjects.DERIVED.format(colour=ANY),))
    if component == "transduction-2tdx":
        return _observer(component, subjects.TRANSDUCTION_ID)
    if component == "crdt-service":
        return Grant(publish=(), subscribe=(subjects.CRDT_MERGE,), respond=True)
    if component == "interaction-timeline":
        stream = natsclient.TIMELINE_STREAM
        # one durable per replica (natsclient.timeline_durable of its pod name): any consumer of the timeline's stream
        return Grant(publish=(subjects.TIMELINE_RETENTION, *_stream(stream), *_consumer(stream, ANY)), subscribe=(_inbox(component),))
    return None  # egraph-service, duck-colors: HTTP only


def operator_grant() -> Grant:
    return Grant(publish=_work_lag(), subscribe=(_inbox(OPERATOR),))


def agent_pods(agents: int, agents_per_pod: int) -> list[range]:
    """The block of agent ids each agent pod hosts, pod 0 first (as config.NetworkConfig.block)."""
    return [range(start, min(start + agents_per_pod, agents)) for start in range(0, agents, agents_per_pod)]


def grants(neighbours: Sequence[Sequence[int]], agents_per_pod: int, components: Iterable[str]) -> dict[str, Grant]:
    """Every identity of a network whose agent i has `neighbours[i]`: each agent pod, each component using
    NATS, the operator."""
    table = {}
    for ordinal, block in enumerate(agent_pods(len(neighbours), agents_per_pod)):
        identity = agent_pod(ordinal)
        table[identity] = agent_grant(identity, block, remote_neighbours(neighbours, block))
    for component in components:
        grant = component_grant(component)
        if grant is not None:
            table[component] = grant
    table[OPERATOR] = operator_grant()
    return table
