"""The interaction timeline: every agent event, stored in DuckDB and read in causal order.

    from agentnet_runtime.timeline import Event, Recorder, Timeline
    with Timeline(path) as timeline:
        timeline.append(events)                      # idempotent batch append
        timeline.query(agent=3, kind="send", since=t0)  # causal order

`Timeline` imports duckdb; importing this package does not (agents without a data
directory never load it).
"""

from .events import KINDS, Event, Recorder, event_key

__all__ = ["KINDS", "Event", "Recorder", "Timeline", "event_key"]


def __getattr__(name: str):
    if name == "Timeline":
        from .store import Timeline

        return Timeline
    raise AttributeError(name)
