"""The Spin (wasi:http) build of the components that are request handlers over the engine
(catalogue.Component.spin): `make wasm` compiles each into build/wasm/<component>.wasm with
componentize-py (wasm/build.sh), and wasmtime serve or Spin runs it.

- `routes`: what each Spin component answers (its stateless routes, /, /health, /ready) and how,
  over the same pure functions the Python components use (request_checks.py, answers/), so
  bodies, errors and status codes match;
- `settings`: a component's settings from wasi:config/store (Spin variables) over the WASI
  environment, by settings.py's models (their
  JSON schema, frozen into the build), since pydantic's compiled core cannot load under WASI;
- `handler`: the wasi:http incoming-handler, only importable inside the build (its bindings).

A Spin instance serves one request and is dropped, so nothing outlives a request: no memo, no
merge cache, no replica, no NATS, no threads. What needs those stays in the Python process.
"""
