"""Pure engine core: terms, the CRDT e-graph, rewrites, topology, colouring.

No I/O lives here; adapters (NATS, HTTP, DuckDB, metrics) wrap it.

- `terms`: the term language (parse / print, `TermSyntaxError`)
- `egraph`: the CRDT e-graph replica (`EGraph`): its state and congruence closure
- `events`: causality: events, `Delta` and its wire form, the event log, compaction into a
  checkpoint, epochs
- `retention`: the knowledge budget (`max_nodes`): which epochs a replica keeps
- `clock`: vector clock helpers
- `numbers`: exact rational values and arithmetic, the value domain of the constant-folding analysis
- `rewrites`: rules as data (with conditions on values), the RED / BLUE / GREEN families, folding
- `saturate`: equality saturation under a `Budget`, the memoised `Saturator`
  (whose `verify` answers equal / unequal / unknown)
- `explain`: proof paths of derived equalities (`Saturator.explain`), each step one rule at one place
- `extract`: the cheapest term of a class
- `counterexample`: refutation by exact evaluation at random points
- `topology`: ring / torus / complete / ramanujan graphs (`build_topology`, `check_topology`)
- `colour`, `colouring`: the three colours, 3-colouring of a topology, display palette

Import the modules directly; this package imports nothing so that loading one
module (say, terms) does not pull in numpy and networkx.

`events`, `egraph`, `saturate` and `extract` are compiled to C extensions by mypyc at install (see
setup.py); compiled_modules() says which modules load that way.
"""

from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path


def compiled_modules() -> dict[str, Path]:
    """Modules of this package that load as C extensions (Python prefers them to the source): name -> file."""
    suffix = EXTENSION_SUFFIXES[0]  # this interpreter's own, e.g. .cpython-311-x86_64-linux-gnu.so
    return {
        path.name.removesuffix(suffix): path
        for path in Path(__file__).parent.glob(f"*{suffix}")
        if not path.name.removesuffix(suffix).endswith("__mypyc")  # mypyc's support library for a module
    }
