"""stream-green (/stream/green): the GREEN rewrite family (identities: x+0, x*1, x*0) over a stream of terms; see streams.py."""

from agentnet_runtime.components.streams import StreamService


def create(config) -> StreamService:
    return StreamService(config, "GREEN")
