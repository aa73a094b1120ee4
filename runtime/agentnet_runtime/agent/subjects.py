"""Every NATS subject agentnet uses: the one place that names them.

`agent.{id}.*` subjects are addressed to agent `id` (its inbox), except `heartbeat`,
which agent `id` publishes about itself for its neighbours in other processes.

Idle traffic grows with the network's edges, not its square: an agent's heartbeat goes
to its neighbours only (in memory to those in its own process, on agent.{id}.heartbeat to
the processes hosting the others, which subscribe to just those subjects), and observers
(agent-orchestrator, dashboard) get one message per agent process per interval,
`agents.heartbeat`, listing the heartbeats of every agent it hosts.
"""

from typing import Any

# Addressed to agent {id}:
STATE = "agent.{id}.state"  # a delta (or full state) pushed by a neighbour; answered with an ack
SYNC = "agent.{id}.sync"  # anti-entropy request (digest + clock); the reply carries what the asker lacks
ACK = "agent.{id}.ack"  # "I have joined your delta; here is my clock"
# Published by agent {id}:
HEARTBEAT = "agent.{id}.heartbeat"  # digest, size and clock summary, every heartbeat interval
# Published by each agent process:
HEARTBEATS = "agents.heartbeat"  # {"network", "pod", "agents": {"<id>": heartbeat}}: every hosted agent's, per interval
# Network-wide:
BROADCAST_HEARTBEAT = "broadcast.heartbeat"  # roll call: every agent process answers with its heartbeats at once
NETWORK_STATUS = "network.status"  # each agent process publishes a summary of its agents
TIMELINE_EVENTS = "timeline.events"  # timeline event batches, from processes with no local DuckDB file (JetStream-stored)
TIMELINE_RETENTION = "timeline.retention"  # what the timeline's retention dropped (plain JSON), after it drops some
# Published by the service components:
DERIVED = "stream.derived.{colour}"  # what a stream component derived (colour lower-case), as a delta
CRDT_MERGE = "crdt.merge"  # batched merges, request/reply, served by crdt-service

# Components that talk to agents in the agents' envelope speak as these ids: negative, so
# never an agent's; agents treat them as non-neighbours (no clock bookkeeping) yet answer
# them like anyone else, and ack to agent.{id}.ack. One id per component, so acks never cross.
STREAM_IDS = {"RED": -1, "BLUE": -2, "GREEN": -3}
ORCHESTRATOR_ID = -4
VERIFIER_ID = -5
DASHBOARD_ID = -6
TRANSDUCTION_ID = -7
# Agents adopt these components' deltas as events of their own (Agent.adopt): a stream's replica id
# changes with every worker and pod, and must not become an entry of every clock for good.
ADOPTED_SENDERS = frozenset(STREAM_IDS.values())

INBOX_KINDS = ("state", "sync", "ack")


def inbox(agent: int) -> str:
    """Wildcard subscription for everything addressed to (or published by) an agent."""
    return f"agent.{agent}.*"


def for_agent(template: str, agent: int) -> str:
    return template.format(id=agent)


def parse(subject: str) -> tuple[int, str] | None:
    """(agent id, kind) of an `agent.{id}.{kind}` subject, else None."""
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != "agent" or not parts[1].isdigit():
        return None
    return int(parts[1]), parts[2]


def heartbeats(network: str, pod: str, beats: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The body of an agents.heartbeat message: the heartbeats of one process's agents."""
    return {"network": network, "pod": pod, "agents": {str(agent): beat for agent, beat in beats.items()}}


def beats_of(body: Any, network: str) -> list[tuple[int, dict[str, Any]]]:
    """(agent id, heartbeat) of each agent in an agents.heartbeat body of `network`; [] for another network's.
    The transport has checked its shape (transport.check_body)."""
    if body.get("network") != network:
        return []
    return [(int(agent), beat) for agent, beat in body["agents"].items()]
