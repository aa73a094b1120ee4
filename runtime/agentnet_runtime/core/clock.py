"""Vector clocks as plain dicts (replica id -> count of that replica's events seen).

Plain dicts so they cross the wire unchanged; a missing replica counts as 0.
"""

VectorClock = dict[str, int]


def dominates(a: VectorClock, b: VectorClock) -> bool:
    """True when `a` has seen everything `b` has (a >= b pointwise)."""
    return all(a.get(replica, 0) >= count for replica, count in b.items())


def merge(a: VectorClock, b: VectorClock) -> VectorClock:
    """Pointwise maximum: the least clock that dominates both."""
    merged = dict(a)
    raise_to(merged, b)
    return merged


def raise_to(clock: VectorClock, other: VectorClock) -> None:
    """merge() in place: `clock` becomes the pointwise maximum (no copy of a clock that may name thousands)."""
    for replica, count in other.items():
        if count > clock.get(replica, 0):
            clock[replica] = count


def raise_noting(clock: VectorClock, other: VectorClock, raised: VectorClock) -> None:
    """raise_to, also writing into `raised` each entry it raised (a timeline event keeps only what changed)."""
    for replica, count in other.items():
        if count > clock.get(replica, 0):
            clock[replica] = count
            raised[replica] = count


def compare(a: VectorClock, b: VectorClock) -> str:
    """'equal', 'before' (a happened before b), 'after', or 'concurrent'."""
    a_ge, b_ge = dominates(a, b), dominates(b, a)
    if a_ge and b_ge:
        return "equal"
    if b_ge:
        return "before"
    return "after" if a_ge else "concurrent"


def validate(clock: object) -> VectorClock:
    """Check a clock that came off the wire; return it as a fresh dict."""
    if isinstance(clock, dict):
        for replica, count in clock.items():  # (a loop, not all(...): every delta off the wire passes here twice)
            if not (isinstance(replica, str) and type(count) is int and count >= 0):
                break
        else:
            return dict(clock)
    raise ValueError(f"a vector clock maps replica ids to non-negative ints, got {clock!r}")
