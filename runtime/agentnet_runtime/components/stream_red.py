"""stream-red (/stream/red): the RED rewrite family (forward: commutativity and associativity) over a stream of terms; see streams.py."""

from agentnet_runtime.components.streams import StreamService


def create(config) -> StreamService:
    return StreamService(config, "RED")
