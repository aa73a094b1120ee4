"""The engine's incremental parts against brute force: the class index the e-graph keeps,
compiled rule search, saturation that keeps its place between runs, the digest kept up to
date, and the memo of checked wire batches."""

import json

import pytest
from core_strategies import arith_terms, histories, naive_closure, play, terms
from hypothesis import given, settings
from hypothesis import strategies as st

from agentnet_runtime.core.colour import Colour
from agentnet_runtime.core.egraph import Delta, EGraph
from agentnet_runtime.core import numbers
from agentnet_runtime.core.rewrites import ALL_RULES, BLUE_RULES, CONDITIONS, RED_RULES, Rule, parse_rules
from agentnet_runtime.core.saturate import Budget, Saturation, StopReason, saturate
from agentnet_runtime.core.terms import Term, is_pattern_var, parse

pytestmark = pytest.mark.timeout(120)

# Beyond the three families: deeper patterns, repeated variables, constants, calls.
MORE_RULES = parse_rules("""
    ((?a + ?b) + ?c) + ?d => ?a + (?b + (?c + ?d))
    ?a * (?b * (?c + ?d)) => (?a * ?b) * ?c + (?a * ?b) * ?d
    twice: ?a + ?a => 2 * ?a
    ?x * 0 + ?x => ?x
    f(?a, g(?a, 1), ?b) => ?b
    f(?a) => g(?a, ?a)
    """)

call_terms = terms(
    ("+", "*"), calls=True, variables=st.sampled_from("ab"), numbers=st.sampled_from(["0", "1"]), max_leaves=6
)


def brute_force_shapes(egraph: EGraph) -> set:
    """(class, (op, *child classes)) of every e-node, by a brute-force congruence closure (class = smallest id)."""
    closure = naive_closure(egraph)
    return {(closure[node], (op, *[closure[kid] for kid in kids])) for node, (op, kids) in egraph._nodes.items()}


def indexed_shapes(egraph: EGraph) -> list:
    """The e-graph's own class index, written with class ids."""
    find = egraph.find
    return [(find(root), (shape[0], *map(find, shape[1:]))) for root, shape in egraph.canonical_nodes()]


@settings(max_examples=60)
@given(histories(max_ops=12), histories(max_ops=8), st.randoms(use_true_random=False))
def test_the_class_index_is_the_congruence_closure(first, second, rng):
    """Whatever order events arrive in (children after parents, unions before their nodes),
    the index holds each e-node's shape over current classes, once."""
    source = play(EGraph("a"), first)
    play(source, second, Colour.RED)
    events = [Delta({}, {}, (batch,)) for batch in source.delta_since({}).batches]
    rng.shuffle(events)
    indexed, plain = EGraph("b"), EGraph("c")
    indexed.class_index()  # kept up to date from now on (plain builds its shapes from the hash-cons)
    for delta in events:
        for replica in (indexed, plain):
            replica.join(delta)
            shapes = indexed_shapes(replica)
            assert len(shapes) == len(set(shapes)) and set(shapes) == brute_force_shapes(replica)
    assert indexed.digest() == plain.digest() == source.digest()
    assert indexed.class_index() == plain.class_index()
    for root, shape in indexed.canonical_nodes():  # the hash-cons files each shape under a node of its class
        assert indexed.root(indexed._hashcons[shape]) == root


def brute_force_matches(egraph: EGraph, rule: Rule) -> set:
    """Every (class, class of each variable in first-occurrence order) the rule's left side matches, by
    enumeration. A class holding numerals is its numeral alone (or nothing, if they disagree), and
    never the top of a match; a match must pass the rule's conditions on the classes' values."""
    pattern = rule.lhs
    shapes: dict = {}
    for root, shape in egraph.canonical_nodes():
        shapes.setdefault(root, []).append(shape)
    values: dict = {}
    for root, class_shapes in shapes.items():
        found = {numbers.value(shape[0]) for shape in class_shapes if len(shape) == 1 and numbers.numeral_of(shape[0])}
        if found:
            values[root] = found.pop() if len(found) == 1 else None
            shapes[root] = [(numbers.spell(values[root]),)] if values[root] is not None else []

    def match(term: Term, cls, env: dict):
        if is_pattern_var(term):
            if term.op not in env:
                yield {**env, term.op: cls}
            elif env[term.op] == cls:
                yield env
            return
        for shape in shapes.get(cls, ()):
            if shape[0] == term.op and len(shape) == len(term.args) + 1:
                found = [env]
                for arg, kid in zip(term.args, shape[1:]):
                    found = [deeper for partial in found for deeper in match(arg, kid, partial)]
                yield from found

    order: list = []

    def first_occurrence(term: Term):
        if is_pattern_var(term):
            if term.op not in order:
                order.append(term.op)
        for arg in term.args:
            first_occurrence(arg)

    def holds(env: dict) -> bool:
        return all(values.get(env[variable]) is not None and CONDITIONS[condition](values[env[variable]])
                   for condition, variable in rule.conditions)  # fmt: skip

    first_occurrence(pattern)
    return {
        (cls, *[env[var] for var in order])
        for cls in shapes
        if cls not in values
        for env in match(pattern, cls, {})
        if holds(env)
    }


@settings(max_examples=40)
@given(
    st.lists(call_terms, min_size=1, max_size=4), st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=2)
)
def test_compiled_search_finds_exactly_the_matches(term_list, unions):
    egraph = EGraph("a")
    roots = [egraph.add_term(term) for term in term_list]
    for i, j in unions:
        egraph.union(roots[i % len(roots)], roots[j % len(roots)])
    saturate(egraph, RED_RULES, Budget(iterations=2, nodes=400))  # merges, cycles, several shapes a class
    egraph.rebuild()
    for rule in ALL_RULES + MORE_RULES:
        assert set(rule.search(egraph)) == brute_force_matches(egraph, rule), str(rule)


def assert_a_full_search_finds_nothing_new(egraph: EGraph, rules) -> None:
    classes, size = {node: egraph.find(node) for node in egraph._nodes}, len(egraph)
    assert saturate(egraph, rules).saturated  # a fresh saturation searches everywhere first
    assert len(egraph) == size and {node: egraph.find(node) for node in egraph._nodes} == classes


@settings(max_examples=40)
@given(st.lists(arith_terms, min_size=1, max_size=3), st.lists(arith_terms, min_size=1, max_size=3), st.booleans())
def test_saturation_that_keeps_its_place_misses_nothing(first, later, union_them):
    """An agent's rewriting: runs separated by news (joined deltas, local terms and unions);
    each run searches only around what changed. Saturated must still mean saturated."""
    rules = RED_RULES + BLUE_RULES + MORE_RULES[:2]
    egraph = EGraph("a")
    roots = [egraph.add_term(term) for term in first]
    saturation = Saturation(egraph, rules, Budget(nodes=3_000))
    if not saturation.run().saturated:
        return
    other = EGraph("b")
    for term in later:
        other.add_term(term, Colour.BLUE)
    egraph.join(other)
    if union_them:
        egraph.union(roots[0], egraph.lookup(later[0]))
    report = saturation.run()
    saturation.close()
    if report.saturated:
        assert_a_full_search_finds_nothing_new(egraph, rules)


@settings(max_examples=40)
@given(st.lists(arith_terms, min_size=1, max_size=3), st.sampled_from("abc"), st.sampled_from(["0", "1", "2"]))
def test_a_class_that_gains_a_value_is_searched_around(term_list, name, numeral):
    """Folding, identities (x * 1) and conditions (collect-once) test a class's value, and are searched
    around classes that gained one, not around every change: a variable found to be a number later
    (a union from elsewhere) must still fold, simplify and collect everything above it."""
    egraph = EGraph("a")
    for term in term_list:
        egraph.add_term(term)
    saturation = Saturation(egraph, ALL_RULES, Budget(nodes=3_000))
    if not saturation.run().saturated or egraph.lookup(Term(name)) is None:
        return
    egraph.union(egraph.lookup(Term(name)), egraph.add_term(Term(numeral)))
    report = saturation.run()
    saturation.close()
    if report.saturated:
        assert_a_full_search_finds_nothing_new(egraph, ALL_RULES)


@settings(max_examples=30)
@given(st.lists(arith_terms, min_size=1, max_size=3))
def test_runs_cut_short_resume_where_they_stopped(term_list):
    """Out of time after the first rule of an iteration: the rest of what was found waits for the
    next run (no later search finds it again). Run after run, it still saturates."""
    rules = RED_RULES + BLUE_RULES
    egraph = EGraph("a")
    for term in term_list:
        egraph.add_term(term)
    saturation = Saturation(egraph, rules, Budget(seconds=0.0, nodes=3_000))
    for _ in range(500):
        report = saturation.run()
        if report.stop_reason is not StopReason.TIME:
            break
    saturation.close()
    if report.saturated:
        assert_a_full_search_finds_nothing_new(egraph, rules)
    else:
        assert report.stop_reason is StopReason.NODES


def test_a_run_searches_only_what_changed():
    egraph = EGraph("a")
    for name in "abcdefgh":
        egraph.add_term(parse(f"{name} * (x + y)"))
    saturation = Saturation(egraph, ALL_RULES)
    first = saturation.run()
    assert first.saturated and first.matches > 0
    again = saturation.run()  # nothing changed since: nothing to search, nothing applied
    assert again.saturated and again.matches == 0 and again.iterations == 1
    egraph.add_term(parse("q * (x + y)"))
    news = saturation.run()
    assert news.saturated and 0 < news.matches < first.matches / 4
    assert egraph.equivalent(parse("q * (x + y)"), parse("y * q + x * q"))
    saturation.close()


def test_a_saturation_that_leaves_the_search_to_another_costs_its_joins_nothing_and_searches_everywhere_when_it_runs():
    """Saturation.skip: an agent whose colour another agent of its process searches. It neither watches the
    e-graph nor builds the class index (kept up to date from their first use, they made each replicating
    agent's joins a third slower and more); should it become the searcher (a partition cut it off from the
    one that was), its first run searches everything, so nothing it skipped goes unsearched."""
    egraph = EGraph("a")
    saturation = Saturation(egraph, ALL_RULES)
    for name in "abcdefgh":
        egraph.add_term(parse(f"{name} * (x + y)"))
    saturation.skip()
    other = EGraph("b")
    other.add_term(parse("p * (x + y)"))
    egraph.join(other.delta_since({}))
    saturation.skip()
    assert egraph._classes is None and egraph._watchers == []
    first = saturation.run()
    assert first.saturated and first.matches > 0
    assert egraph.equivalent(parse("a * (x + y)"), parse("a * x + a * y"))
    assert egraph.equivalent(parse("p * (x + y)"), parse("p * x + p * y"))
    again = saturation.run()  # watching again: only what changes from here on is searched
    assert again.saturated and again.matches == 0
    egraph.add_term(parse("q * (x + y)"))
    news = saturation.run()
    assert 0 < news.matches < first.matches / 4 and egraph.equivalent(parse("q * (x + y)"), parse("q * x + q * y"))
    saturation.close()


def test_a_watcher_sees_a_merge_of_two_older_classes_but_not_a_new_class_joining_one():
    """A rewrite's result, a class made since the watcher looked, joining the matched class brings
    only new shapes (which the watcher has), so the class does not count as grown; a union of two
    classes the watcher knew does (their old shapes meet), whichever side keeps the root."""
    egraph = EGraph("a")
    old = egraph.add_term(parse("a + b"))
    other = egraph.add_term(parse("c * d"))
    watcher = egraph.watch()
    new = egraph.add_term(parse("b + a"))
    egraph.union(old, new)
    shapes, merged = egraph.changes(watcher)
    assert merged == {} and list(shapes) == [("+", egraph.root(egraph.lookup(Term("b"))), egraph.root(egraph.lookup(Term("a"))))]
    assert set(shapes.values()) == {egraph.root(old)}
    egraph.union(other, old)
    shapes, merged = egraph.changes(watcher)
    assert list(merged) == [egraph.root(old)] and shapes == {}
    fresh = [egraph.add_term(parse(text)) for text in ("x", "y")]
    egraph.union(*fresh)  # two new classes: one new class
    egraph.union(fresh[0], old)
    shapes, merged = egraph.changes(watcher)
    assert merged == {} and set(shapes.values()) == {egraph.root(old)}
    egraph.unwatch(watcher)


@settings(max_examples=40)
@given(histories(max_ops=10), histories(max_ops=6), st.sampled_from(list(Colour)))
def test_the_digest_kept_up_to_date_equals_one_computed_afresh(first, second, colour):
    egraph = EGraph("a")
    egraph.digest()  # from now on the digest follows every change
    for op in first:
        play(egraph, [op], colour)
        egraph.digest()
    egraph.join(play(EGraph("b"), second, Colour.BLUE))
    fresh = EGraph.from_wire(json.loads(json.dumps(egraph.to_wire())))
    assert egraph.digest() == fresh.digest() == egraph.fork("c").digest()


def test_the_digest_tells_states_apart():
    egraph = EGraph("a")
    x, y = egraph.add_term(parse("f(x)")), egraph.add_term(parse("f(y)"))
    digests = [egraph.digest()]
    egraph.add_term(parse("x"), Colour.RED)  # a colour tag
    digests.append(egraph.digest())
    egraph.union(egraph.lookup(parse("x")), egraph.lookup(parse("y")))  # a union (and by congruence f(x) = f(y))
    digests.append(egraph.digest())
    egraph.add_term(parse("z"))  # a node
    digests.append(egraph.digest())
    assert len(set(digests)) == 4 and egraph.find(x) == egraph.find(y)


def test_the_digest_tells_apart_states_that_differ_only_in_their_classes():
    digests = set()
    for a, b in (("x", "y"), ("x", "z"), ("y", "z")):
        egraph = EGraph("a")
        for name in "xyz":
            egraph.add_term(parse(name))
        before = egraph.digest()
        egraph.union(egraph.lookup(parse(a)), egraph.lookup(parse(b)))
        assert egraph.digest() != before
        digests.add(egraph.digest())
    assert len(digests) == 3


def test_a_batch_seen_before_is_checked_again_if_its_content_differs():
    a = EGraph("memo-test")
    a.add_term(parse("x + y"))
    text = json.dumps(a.to_wire())
    assert Delta.from_wire(json.loads(text)) == a.delta_since({})  # checked, and remembered
    assert Delta.from_wire(json.loads(text)) == a.delta_since({})  # the same again: from the memo
    tampered = json.loads(text)  # same event (origin, seq), other content
    tampered["batches"][0][2][0][2] = "-"
    with pytest.raises(ValueError, match="does not match its content"):
        Delta.from_wire(tampered)
