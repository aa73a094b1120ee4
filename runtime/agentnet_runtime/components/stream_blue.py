"""stream-blue (/stream/blue): the BLUE rewrite family (backward: distribute and factor) over a stream of terms; see streams.py."""

from agentnet_runtime.components.streams import StreamService


def create(config) -> StreamService:
    return StreamService(config, "BLUE")
