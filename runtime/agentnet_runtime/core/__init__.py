"""Pure engine core: terms, the CRDT e-graph, rewrites, topology, colouring.

No I/O lives here; adapters (NATS, HTTP, DuckDB, metrics) wrap it.

- `terms`: the term language (parse / print, `TermSyntaxError`)
- `egraph`: the CRDT e-graph replica (`EGraph`, `Delta`, wire form)
- `clock`: vector clock helpers
- `rewrites`: rules as data and the RED / BLUE / GREEN families
- `saturate`: equality saturation under a `Budget`, extraction, the memoised `Saturator`
- `topology`: ring / torus / complete / ramanujan graphs (`build_topology`, `check_topology`)
- `colour`, `colouring`: the three colours, 3-colouring of a topology, display palette

Import the modules directly; this package imports nothing so that loading one
module (say, terms) does not pull in numpy and networkx.
"""
