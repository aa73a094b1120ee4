"""The agents' HTTP routes: status, per-agent state and e-graph, sync and message submission,
and deployment guide 001's JSON API.

    GET  /                        service metadata (web.create_app), with the hosted agents and their colours
    GET  /health                  liveness, with guide 001's agent_id (the first hosted) and timestamp
    GET  /status                  this process's agents, digests, NATS connection
    GET  /agent/{id}/state        guide 001's agent_id, node_id, egraph_nodes, neighbors, messages_received,
                                  messages_sent, syncs_completed, uptime_seconds; then replica, colour, polarity,
                                  display, clock, lamport, digest, agreeing_neighbors
    GET  /agent/{id}/egraph       the replica's full state (the e-graph wire form)
    GET  /agent/{id}/messages     the agent's recent messages, sent and received (newest last)
    POST /agent/{id}/sync         run anti-entropy with every neighbour now
    POST /agent/{id}/message      {"term": "x*(y+z)"} or {"prove": ["x*(y+z)", "x*y + x*z"]}
    GET  /api/metrics             totals and rates of the hosted agents under "performance", and each one's state
    GET  /api/timeline?limit=N    the hosted agents' recent events in causal order (newest last), each with the
                                  guide's "timestamp" and "type"; agent.RECENT_EVENTS per agent at most

Events in /messages and /api/timeline: {"timestamp" (ISO 8601, UTC), "type" (the event's kind: send,
receive, submit, sync, ...), "agent_id", "subject", "lamport", "seq", "payload"}. The durable, whole-network
record is the interaction-timeline component's; these are what the process still holds in memory.

A proof's answer is three-valued: "equal" true (proven by the network so far), false (refuted:
the values differ at the point shown as "counterexample") or null (not proven yet, or not at all);
"verdict" says the same in words: equal, unequal, unknown.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentnet_runtime.core.saturate import VERDICTS
from agentnet_runtime.core.terms import Term
from agentnet_runtime.timeline.events import Event
from agentnet_runtime.web import RequestError, json_body, number, parse_term

from .agent import RECENT_EVENTS, Agent
from .host import AgentHost

MESSAGE_FIELDS = ("term", "prove")
_TERM_RULE = "must be a term such as x*(y+z): numbers, variables, + - * / ^, f(args)"


def agent_routes(host: AgentHost) -> list[Route]:
    def hosted(request: Request) -> Agent:
        text = request.path_params["id"]
        if not text.isdigit():
            raise RequestError(f"agent id {text!r} is not an integer", field="id", rule="must be an integer agent id")
        agent = host.agents.get(int(text))
        if agent is None:
            ids = sorted(host.agents)
            raise RequestError(
                f"agent {text} is not hosted by this process", field="id",
                rule=f"must be one of the hosted agent ids {ids[0]}..{ids[-1]}", status=404,
            )  # fmt: skip
        return agent

    async def status(request: Request) -> JSONResponse:
        return JSONResponse(host.status())

    async def state(request: Request) -> JSONResponse:
        return JSONResponse(hosted(request).state(host.config.pod_name))

    async def egraph(request: Request) -> JSONResponse:
        return JSONResponse(hosted(request).egraph.to_wire())

    async def messages(request: Request) -> JSONResponse:
        agent = hosted(request)
        shown = [event_json(event) for event in agent.recent if event.kind in MESSAGE_KINDS]
        return JSONResponse({"agent_id": agent.id, "messages_received": agent.received_count,
                             "messages_sent": agent.sent_count, "messages": shown})  # fmt: skip

    async def metrics(request: Request) -> JSONResponse:
        return JSONResponse(performance(host))

    async def timeline(request: Request) -> JSONResponse:
        most = RECENT_EVENTS * len(host.agents)
        limit = int(number(request.query_params.get("limit", most), "limit", 1, most, integer=True))
        events = sorted((e for agent in host.agents.values() for e in agent.recent), key=lambda e: (e.lamport, e.origin, e.seq))
        return JSONResponse([event_json(event) for event in events[-limit:]])

    async def sync(request: Request) -> JSONResponse:
        agent = hosted(request)
        if not host.transport.connected:
            raise RequestError("not connected to NATS yet", field="nats", rule="must be connected to sync", status=503)
        results = await host.sync_agent(agent)
        return JSONResponse({"agent": agent.id, "digest": agent.egraph.digest(), "neighbours": {str(n): r for n, r in results.items()}})

    async def message(request: Request) -> JSONResponse:
        agent = hosted(request)
        terms = message_terms(await json_body(request))
        if len(terms) == 1:
            class_id = agent.submit(terms[0])
            host.wake(agent)
            return JSONResponse({"agent": agent.id, "accepted": str(terms[0]), "class": class_id}, status_code=202)
        lhs, rhs = terms
        equal, counterexample = agent.prove(lhs, rhs)
        host.wake(agent)
        answer = {"agent": agent.id, "lhs": str(lhs), "rhs": str(rhs), "equal": equal, "verdict": VERDICTS[equal]}
        if counterexample is not None:
            answer["counterexample"] = counterexample.to_json()
        return JSONResponse(answer)

    return [
        Route("/status", status),
        Route("/agent/{id}/state", state),
        Route("/agent/{id}/egraph", egraph),
        Route("/agent/{id}/messages", messages),
        Route("/api/metrics", metrics),
        Route("/api/timeline", timeline),
        Route("/agent/{id}/sync", sync, methods=["POST"]),
        Route("/agent/{id}/message", message, methods=["POST"]),
    ]


MESSAGE_KINDS = ("send", "receive")


def utc_iso(seconds: float) -> str:
    """Seconds since the epoch as the guides write a time: 2025-12-21T10:00:00.123456Z."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


def event_json(event: Event) -> dict[str, Any]:
    """An event as guide 001's API shows one: its time and type first."""
    return {
        "timestamp": utc_iso(event.time),
        "type": event.kind, "agent_id": event.origin, "subject": event.subject, "lamport": event.lamport,
        "seq": event.seq, "payload": event.payload,
    }  # fmt: skip


def performance(host: AgentHost) -> dict[str, Any]:
    """GET /api/metrics: the hosted agents' totals ("performance", rates per second since they started) and states."""
    states = [agent.state(host.config.pod_name) for agent in host.agents.values()]
    uptime = max((state["uptime_seconds"] for state in states), default=0.0)
    total = {key: sum(state[key] for state in states) for key in ("egraph_nodes", "messages_received", "messages_sent",
                                                                   "syncs_completed")}  # fmt: skip
    rates = {f"{key}_per_second": round(total[key] / uptime, 3) if uptime else 0.0
             for key in ("messages_received", "messages_sent", "syncs_completed")}  # fmt: skip
    return {
        "network": host.config.network.name,
        "node_id": host.config.pod_name,
        "performance": {"agents": len(states), **total, **rates, "converged": host.status()["converged"],
                        "uptime_seconds": uptime},
        "agents": states,
    }  # fmt: skip


def agents_health(host: AgentHost) -> dict[str, Any]:
    """What GET /health adds for an agent process: guide 001's agent_id (the first agent hosted; the only one
    with agentsPerPod 1) and timestamp, every agent hosted, and the NATS connection."""
    return {"agent_id": min(host.agents), "timestamp": utc_iso(time.time()), "agents": sorted(host.agents),
            "nats": "connected" if host.transport.connected else "connecting"}  # fmt: skip


async def agents_metadata(host: AgentHost) -> dict[str, Any]:
    """What GET / adds for an agent process: its network and its agents with their colour and polarity."""
    return {"network": host.config.network.name, "node_id": host.config.pod_name,
            "agents": [{"agent_id": agent.id, "colour": agent.colour.value, "polarity": agent.colour.polarity}
                       for agent in host.agents.values()]}  # fmt: skip


def message_terms(body: dict, also: tuple[str, ...] = ()) -> list[Term]:
    """[term] of {"term": ...} or [lhs, rhs] of {"prove": [lhs, rhs]}; fields in `also` are the caller's.
    A bad one is refused naming its field (term, prove[1]), as the agents' and the dashboard's askers read it."""
    allowed = (*MESSAGE_FIELDS, *also)
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}", field=unknown[0], rule=f"allowed fields: {', '.join(allowed)}")
    given = [name for name in MESSAGE_FIELDS if name in body]
    if len(given) != 1:
        raise RequestError("give exactly one of term, prove", field="body", rule="exactly one of: term, prove")
    if given == ["term"]:
        return [term_field(body["term"], "term")]
    sides = body["prove"]
    if not (isinstance(sides, list) and len(sides) == 2):
        raise RequestError("prove needs two terms", field="prove", rule="must be a list of two terms [lhs, rhs]")
    return [term_field(sides[0], "prove[0]"), term_field(sides[1], "prove[1]")]


def term_field(value: object, field: str) -> Term:
    if not isinstance(value, str) or not value.strip():
        raise RequestError(f"{field} must be a non-empty string", field=field, rule=_TERM_RULE)
    return parse_term(value, field, _TERM_RULE)
