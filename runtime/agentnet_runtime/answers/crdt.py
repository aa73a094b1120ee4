"""crdt-service's merge as functions of a request: the one place a merge request's shape, checks and
result are made, whether the Python process answers it (crdt_service.py: HTTP and NATS, a merge cache,
its replica) or a Spin component does (agentnet_runtime.wasm: a fresh instance per request, so no cache).
"""

from __future__ import annotations

from typing import Any

from agentnet_runtime.core.egraph import DELTA_KIND, STATE_KIND, Delta, EGraph
from agentnet_runtime.request_checks import RequestError

MERGED_REPLICA = "crdt-service"  # replica id a merged state carries (it makes no events of its own)
MAX_INPUTS = 1_000  # states one merge may join
MERGE_RULE = 'give {"states": [wire, ...]} or {"base": wire, "delta": wire}'
WIRE_RULE = "an e-graph state or delta in wire form (EGraph.to_wire / Delta.to_wire)"


def field_name(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def merge_inputs(spec: Any, prefix: str = "") -> list[Any]:
    """The inputs (wire forms) of one merge request; refuses a malformed request naming the field."""
    if not isinstance(spec, dict):
        raise RequestError(f"{prefix} must be a JSON object", field=prefix, rule=MERGE_RULE)
    if "states" in spec:
        if len(spec) > 1:
            extra = sorted(set(spec) - {"states"})[0]
            raise RequestError(f"give states alone, not with {extra!r}", field=field_name(prefix, extra), rule=MERGE_RULE)
        states = spec["states"]
        if not isinstance(states, list) or not 1 <= len(states) <= MAX_INPUTS:
            raise RequestError(f"states must be a list of 1..{MAX_INPUTS} wire forms", field=field_name(prefix, "states"),
                               rule=f"a list of 1..{MAX_INPUTS} e-graph states or deltas")  # fmt: skip
        return states
    unknown = sorted(set(spec) - {"base", "delta"})
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}", field=field_name(prefix, unknown[0]), rule=MERGE_RULE)
    for name in ("base", "delta"):
        if name not in spec:
            raise RequestError(f"{field_name(prefix, name)} is required", field=field_name(prefix, name), rule=MERGE_RULE)
    return [spec["base"], spec["delta"]]


def input_field(spec: dict, index: int, prefix: str = "") -> str:
    """The field of a merge's `index`th input (named only for an error: most merges need no names)."""
    return field_name(prefix, f"states[{index}]" if "states" in spec else ("base", "delta")[index])


def events_of(wires: list[Any]) -> frozenset | None:
    """The dots the inputs carry (the cache key), or None if they are not even shaped like wire forms."""
    try:
        dots = []
        for wire in wires:
            if wire.get("kind") not in (STATE_KIND, DELTA_KIND):
                return None
            dots += [(batch[0], batch[1]) for batch in wire["batches"]]
        return frozenset(dots)
    except (AttributeError, KeyError, TypeError, IndexError):  # TypeError also for an unhashable origin
        return None


def deltas_of(spec: dict, wires: list[Any], prefix: str = "") -> list[Delta]:
    """The inputs decoded; a RequestError names the one that is not a wire form."""
    deltas = []
    for index, wire in enumerate(wires):
        try:
            deltas.append(Delta.from_wire(wire))
        except ValueError as error:
            field = input_field(spec, index, prefix)
            raise RequestError(f"{field}: {error}", field=field, rule=WIRE_RULE) from None
    return deltas


def joined(deltas: list[Delta]) -> EGraph:
    merged = EGraph(MERGED_REPLICA)
    for delta in deltas:
        merged.join(delta)
    return merged


def summary(merged: EGraph) -> dict[str, Any]:
    """What a merge's answer says of the join besides its state."""
    return {"digest": merged.digest(), "nodes": len(merged), "clock": merged.clock}


def merge(spec: Any) -> dict[str, Any]:
    """POST /merge's answer with no cache: the join of the inputs as a full state."""
    wires = merge_inputs(spec)
    merged = joined(deltas_of(spec, wires))
    return {"cached": False, **summary(merged), "state": merged.to_wire()}
