"""The agents' HTTP routes: status, per-agent state and e-graph, sync and message submission.

    GET  /status                  this process's agents, digests, NATS connection
    GET  /agent/{id}/state        size, neighbours, messages, syncs, clock, digest, uptime
    GET  /agent/{id}/egraph       the replica's full state (the e-graph wire form)
    POST /agent/{id}/sync         run anti-entropy with every neighbour now
    POST /agent/{id}/message      {"term": "x*(y+z)"} or {"prove": ["x*(y+z)", "x*y + x*z"]}

A proof's answer is three-valued: "equal" true (proven by the network so far), false (refuted:
the values differ at the point shown as "counterexample") or null (not proven yet, or not at all);
"verdict" says the same in words: equal, unequal, unknown.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentnet_runtime.core.saturate import VERDICTS
from agentnet_runtime.core.terms import Term, TermSyntaxError, parse
from agentnet_runtime.web import RequestError, json_body

from .agent import Agent
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
        Route("/agent/{id}/sync", sync, methods=["POST"]),
        Route("/agent/{id}/message", message, methods=["POST"]),
    ]


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
    try:
        return parse(value)
    except TermSyntaxError as error:
        raise RequestError(f"{field} is not a term: {error}", field=field, rule=_TERM_RULE) from None
