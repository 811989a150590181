"""The step graph helpers: iterative (no recursion limit), and the ancestry equals the transitive upstream."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from flows.language.dag import Ancestry, find_cycle, topological_order, upstream, waves


def _chain(n: int) -> dict[str, list[str]]:
    return {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(n)}


def test_a_long_chain_needs_no_recursion() -> None:
    deps = _chain(5000)
    assert find_cycle(deps) is None
    assert len(waves(deps)) == 5000
    assert Ancestry(deps).is_upstream("s0", "s4999")
    assert not Ancestry(deps).is_upstream("s4999", "s0")


def test_cycles_are_found_in_a_long_graph() -> None:
    deps = _chain(3000)
    deps["s0"] = ["s2999"]
    cycle = find_cycle(deps)
    assert cycle is not None
    assert len(cycle) == 3000
    assert topological_order(deps) == []


def test_waves_of_a_diamond() -> None:
    assert waves({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}) == [["a"], ["b", "c"], ["d"]]


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=40), st.integers(min_value=0, max_value=2**32))
def test_ancestry_is_the_transitive_upstream(size: int, seed: int) -> None:
    rng = random.Random(seed)
    # A random DAG: each step waits for a few earlier ones.
    deps = {f"n{i}": [f"n{j}" for j in range(i) if rng.random() < 0.2] for i in range(size)}
    ancestry = Ancestry(deps)
    for step in deps:
        assert set(ancestry.of(step)) == upstream(deps, step)
        assert len(ancestry.of(step)) == len(upstream(deps, step))
