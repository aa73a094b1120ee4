"""The knowledge budget: which elements a replica keeps when it may hold at most `max_nodes` e-nodes.

Policy. Every element of the state (an e-node's presence, each of its colour bits, a union)
has an epoch: the largest epoch stamp of the events that mention it (events.py). A replica
also holds a floor, an epoch, joined by max (deltas and sync requests carry it). After every
change it raises its floor to `cutoff(nodes per epoch, max_nodes)`: the newest run of whole
epochs whose distinct e-nodes fit in the budget (always at least the newest epoch), and keeps
exactly the elements whose epoch is at or above the floor. Elements below go (union-find cannot
un-merge, so the closure is rebuilt from what is kept). A replica without a budget applies the
floors it receives all the same, so every replica ends with the same state.

Why replicas converge. Write f(S) for the normal form of a state S (its elements with their
epochs, and its floor F): F' = max(F, cutoff(S)), then drop the elements below F'. Joining is
union with max epochs and max floors. For any S, T: f(f(S) ∪ T) = f(S ∪ T):
  - counts(≥ e) only grow when elements are added or their epochs rise, so the set of epochs
    E(X) = {e : counts_X(≥ e) <= max_nodes, or e >= newest(X)} is upward closed, shrinks as X
    grows, and cutoff(X) = min E(X); hence cutoff(S ∪ T) >= cutoff(S) and both floors are
    at least F1 = max(F_S, cutoff(S));
  - an element f(S) dropped has epoch < F1 in S; in S ∪ T its epoch is the max of that and
    its epoch in T, so at or above F1 it counts alike in f(S) ∪ T and in S ∪ T: the two agree
    on every element and every count at or above F1, so on E ∩ [F1, ∞), so on the floor
    max(F1, F_T, cutoff) and on what that floor keeps.
So eviction commutes with joins, whatever the order of deliveries, duplicates and resends,
and replicas that have seen the same events and floors hold the same state (equal digests).
The budget is a bound on what a replica keeps between changes, not during one epoch: the
newest epoch is always kept whole, so a burst inside one epoch may exceed it until the next.
An element is kept by when an event last mentioned it, not when it was last read: adding a
term the replica already holds makes no event, so it does not refresh it; rewrites mention
only what they add, so a class may keep a derived e-node whose older children went (its
class then has no finite term until they are stated again).
"""


def cutoff(per_epoch: dict[int, int], max_nodes: int) -> int:
    """The lowest epoch a replica with this many e-nodes per epoch keeps (0: keep everything)."""
    epochs = sorted([epoch for epoch, count in per_epoch.items() if count > 0], reverse=True)
    total = 0
    for epoch in epochs:
        total += per_epoch[epoch]
        if total > max_nodes:
            return min(epoch + 1, epochs[0])
    return 0
