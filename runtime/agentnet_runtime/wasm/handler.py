"""The wasi:http incoming-handler of a Spin component: reads the request, answers with routes.respond.

Importable only inside the build (wasm/build.sh): `wit_world` is componentize-py's bindings of the
world, and `agentnet_wasm_build` says which component this build is. The settings are read per
request from wasi:config/store (Spin's variables) over wasi:cli/environment: os.environ would hold
the build's, frozen when componentize-py snapshots the interpreter.
"""

from __future__ import annotations

import heapq  # noqa: F401 (Counter.most_common imports it when called: componentize-py bundles only what is imported while it builds)

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import environment, store
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields, IncomingBody, IncomingRequest, Method_Delete, Method_Get, Method_Head, Method_Options, Method_Other,
    Method_Patch, Method_Post, Method_Put, OutgoingBody, OutgoingResponse, ResponseOutparam,
)  # fmt: skip

from agentnet_runtime.catalogue import BY_NAME
from agentnet_runtime.wasm.routes import render, respond
from agentnet_runtime.wasm.settings import given
from agentnet_wasm_build import COMPONENT

_METHODS = {Method_Get: "GET", Method_Head: "HEAD", Method_Post: "POST", Method_Put: "PUT", Method_Delete: "DELETE",
            Method_Patch: "PATCH", Method_Options: "OPTIONS"}  # fmt: skip
_PREFIX = BY_NAME[COMPONENT].route
_CHUNK = 4096  # at most what one blocking-write-and-flush takes


def _method(request: IncomingRequest) -> str:
    method = request.method()
    return method.value if isinstance(method, Method_Other) else _METHODS.get(type(method), "OTHER")


def _path(request: IncomingRequest) -> str:
    """The path relative to the component's prefix: Spin routes /egraph/... here with it, wasmtime serve too."""
    path = (request.path_with_query() or "/").split("?", 1)[0]
    if path == _PREFIX or path.startswith(_PREFIX + "/"):
        path = path[len(_PREFIX):]
    return path or "/"


def _body(request: IncomingRequest) -> bytes:
    incoming = request.consume()
    chunks = []
    with incoming.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(65536))
            except Err as error:
                if isinstance(error.value, StreamError_Closed):
                    break
                raise
    IncomingBody.finish(incoming)
    return b"".join(chunks)


def _respond(method: str, request: IncomingRequest) -> tuple[int, dict[str, str], dict]:
    try:
        config = store.get_all()
    except Err as error:  # the host's config provider failed: say so, as a refused setting would
        return 500, {}, {"error": f"wasi:config/store: {error.value.value}"}
    return respond(COMPONENT, method, _path(request), _body(request), given(dict(config), dict(environment.get_environment())))


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        method = _method(request)
        status, headers, payload = _respond(method, request)
        data = b"" if method == "HEAD" else render(payload)
        response = OutgoingResponse(Fields.from_list([("content-type", b"application/json"), *((k, v.encode()) for k, v in headers.items())]))
        response.set_status_code(status)
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            for start in range(0, len(data), _CHUNK):
                stream.blocking_write_and_flush(data[start:start + _CHUNK])
        OutgoingBody.finish(body, None)
