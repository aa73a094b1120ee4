"""The components' request answers as pure functions of a request body (no HTTP framework, metrics,
NATS or threads): the one place their fields, checks and results are made, shared by the Python
services (components/) and their Spin build (wasm/).

- `egraph`: egraph-service's saturate, verify and extract
- `crdt`: crdt-service's merge
- `verification`: skill-verification's vote on a term claim
"""
