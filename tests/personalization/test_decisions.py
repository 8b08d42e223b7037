"""Unit tests for variant choice (personalization.decisions)."""

import dataclasses

import pytest

from personalization.decisions import Candidate, choose


def c(*segments: str, match_all: bool = False, value: str = "v") -> Candidate[str]:
    return Candidate(segments=frozenset(segments), value=value, match_all=match_all)


# -- Candidate.matches ----------------------------------------------------------------------


def test_any_matches_on_overlap():
    candidate = c("a", "b")
    assert candidate.matches(frozenset({"a"})) is True
    assert candidate.matches(frozenset({"b", "z"})) is True
    assert candidate.matches(frozenset({"a", "b"})) is True
    assert candidate.matches(frozenset({"z"})) is False
    assert candidate.matches(frozenset()) is False


def test_all_needs_every_segment():
    candidate = c("a", "b", match_all=True)
    assert candidate.matches(frozenset({"a", "b"})) is True
    assert candidate.matches(frozenset({"a", "b", "z"})) is True
    assert candidate.matches(frozenset({"a"})) is False
    assert candidate.matches(frozenset({"b", "z"})) is False
    assert candidate.matches(frozenset()) is False


@pytest.mark.parametrize("match_all", [False, True])
def test_candidate_without_segments_never_matches(match_all):
    candidate = c(match_all=match_all)
    assert candidate.matches(frozenset()) is False
    assert candidate.matches(frozenset({"a", "b"})) is False


def test_candidate_is_frozen_and_keeps_value():
    candidate = Candidate(segments=frozenset({"a"}), value={"block": 1})
    assert candidate.value == {"block": 1}
    assert candidate.match_all is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        candidate.match_all = True  # type: ignore[misc]


# -- choose ---------------------------------------------------------------------------------


def test_choose_first_match_in_priority_order():
    candidates = [c("a", value="first"), c("b", value="second"), c("a", "b", value="third")]
    assert choose(candidates, frozenset({"a"})) == 0
    assert choose(candidates, frozenset({"b"})) == 1
    assert choose(candidates, frozenset({"a", "b"})) == 0
    assert choose(candidates, frozenset({"z"})) is None


def test_choose_priority_beats_specificity():
    candidates = [c("a"), c("a", "b", match_all=True)]
    assert choose(candidates, {"a", "b"}) == 0
    reordered = [c("a", "b", match_all=True), c("a")]
    assert choose(reordered, {"a", "b"}) == 0
    assert choose(reordered, {"a"}) == 1


def test_choose_skips_candidates_without_segments():
    candidates = [c(), c(match_all=True), c("a")]
    assert choose(candidates, {"a"}) == 2


def test_choose_empty_segments_is_default_content():
    candidates = [c("a"), c()]
    assert choose(candidates, frozenset()) is None
    assert choose(candidates, []) is None
    assert choose(candidates, set()) is None
    assert choose(candidates, iter(())) is None


def test_choose_no_candidates():
    assert choose([], {"a"}) is None
    assert choose((), frozenset({"a"})) is None


@pytest.mark.parametrize(
    "segments", [["b", "a"], ("a",), {"a"}, frozenset({"a"}), (s for s in ["a"]), {"a": 1}]
)
def test_choose_accepts_any_iterable(segments):
    assert choose([c("z"), c("a")], segments) == 1


def test_choose_with_match_all_candidates():
    candidates = [c("a", "b", "c", match_all=True), c("a", "b", match_all=True), c("c")]
    assert choose(candidates, ["a", "b", "c"]) == 0
    assert choose(candidates, ["a", "b"]) == 1
    assert choose(candidates, ["a", "c"]) == 2
    assert choose(candidates, ["a"]) is None
