"""The pure arithmetic of recommendations: decay, deltas, "for you" and the business rules."""

import pytest

from recommendations.scoring import Deltas, Recent, apply_rules, decayed, for_you, in_order

DAY = 86400.0


def test_decay_halves_per_half_life_and_ranks_newer_events_higher():
    t = 1_700_000_000.0
    assert decayed(1.0, t + 30 * DAY, 30 * DAY) == pytest.approx(2 * decayed(1.0, t, 30 * DAY))
    # three old views lose to two recent ones a few half-lives later
    assert 3 * decayed(1.0, t, 10 * DAY) < 2 * decayed(1.0, t + 30 * DAY, 10 * DAY)


def test_recent_keeps_the_latest_items_once_and_remembers_purchases():
    recent = Recent.decode("1,2,3", "")
    recent.add(2, False, keep=3)
    recent.add(4, True, keep=3)
    assert recent.items == [3, 2, 4] and recent.bought == [4]
    assert Recent.decode(*recent.encode()) == recent


def test_an_event_cooccurs_with_recent_items_both_ways_and_counts_per_segment():
    deltas = Deltas()
    recent = Recent([1, 2], [])
    deltas.add_event(recent, 3, 5.0, 0.0, ["vip"], half_life_seconds=1e12, keep=10, purchase=True)
    w = decayed(5.0, 0.0, 1e12)
    assert deltas.pairs == {(3, 1): w, (1, 3): w, (3, 2): w, (2, 3): w}
    assert deltas.popular == {("", 3): w, ("vip", 3): w}
    assert recent.items == [1, 2, 3] and recent.bought == [3]
    deltas.add_event(recent, 3, 1.0, 0.0, [], half_life_seconds=1e12, keep=10, purchase=False)
    assert (3, 3) not in deltas.pairs


def test_an_event_pairs_only_with_the_visitors_latest_pair_with_items():
    deltas = Deltas()
    recent = Recent([1, 2, 3, 4], [])
    deltas.add_event(
        recent, 5, 1.0, 0.0, [], half_life_seconds=1e12, keep=10, purchase=False, pair_with=2
    )
    assert {a for a, b in deltas.pairs if b == 5} == {3, 4}  # not 1 or 2
    assert recent.items == [1, 2, 3, 4, 5]  # every recent item is still kept


def _reference_sums(visitors, keep, pair_with, half_life):
    """The sums written out plainly: each event pairs both ways with the visitor's
    ``pair_with`` latest items (not itself) and counts for everyone and each segment."""
    pairs, popular = {}, {}
    for start, segments, events in visitors:
        recent = list(start)
        for ts, item, weight, _purchase in events:
            w = decayed(weight, ts, half_life)
            for other in recent[-pair_with:]:
                if other != item:
                    pairs[(item, other)] = pairs.get((item, other), 0.0) + w
                    pairs[(other, item)] = pairs.get((other, item), 0.0) + w
            for segment in ["", *segments]:
                popular[(segment, item)] = popular.get((segment, item), 0.0) + w
            if item in recent:
                recent.remove(item)
            recent = [*recent, item][-keep:]
    return pairs, popular


def test_a_batch_of_visitors_events_adds_the_plain_sums():
    """The drain adds each visitor's events together (:meth:`Deltas.add_events`, rows by
    first item and by segment): the same sums, by pair and by segment, as written out plainly."""
    import random

    rng = random.Random(7)
    visitors = []
    for _visitor in range(200):
        start = list(dict.fromkeys(rng.randrange(30) for _ in range(rng.randrange(4))))
        segments = rng.sample(["vip", "new", "fr", "de"], rng.randrange(3))
        events = [
            (rng.uniform(0, 9 * DAY), rng.randrange(30), rng.choice([1.0, 5.0]), rng.random() < 0.3)
            for _ in range(rng.randrange(1, 8))
        ]
        visitors.append((start, segments, sorted(events, key=in_order)))
    deltas = Deltas()
    for start, segments, events in visitors:
        recent = Recent(list(start))
        deltas.add_events(recent, events, segments, half_life_seconds=30 * DAY, keep=5, pair_with=3)
        assert recent.items[-1] == events[-1][1] and len(recent.items) <= 5
    pairs, popular = _reference_sums(visitors, keep=5, pair_with=3, half_life=30 * DAY)
    assert deltas.pairs == pytest.approx(pairs) and len(pairs) > 100
    assert deltas.popular == pytest.approx(popular)
    again = Deltas.of_pairs(deltas.pairs, deltas.popular)
    assert again.pairs == deltas.pairs and again.popular == deltas.popular


def test_for_you_breaks_ties_by_the_smaller_id_whatever_the_insertion_order():
    neighbours = {1: [(30, 2.0), (20, 2.0), (10, 2.0)], 2: [(40, 1.0), (5, 1.0)]}
    assert for_you([1], neighbours) == [10, 20, 30]
    # newest item 2: 5 and 40 score 1.0; then item 1's three at 1/2 each
    assert for_you([1, 2], neighbours, length=4) == [5, 40, 10, 20]


def test_events_go_in_time_order_and_same_millisecond_ones_by_item_id():
    events = [(2.0, 7, "view"), (1.0, 9, "view"), (2.0, 3, "purchase"), (1.5, 1, "view")]
    assert [e[1] for e in sorted(events, key=in_order)] == [9, 1, 3, 7]


def test_for_you_weights_the_newest_item_most_and_leaves_out_seen_and_excluded():
    neighbours = {1: [(10, 4.0), (11, 2.0)], 2: [(11, 1.0), (12, 1.0), (1, 1.0)]}
    # 2 is newest: 11 and 12 get 1.0 each from it; 10 gets 1.0/2 and 11 0.5/2 from item 1
    assert for_you([1, 2], neighbours) == [11, 12, 10]
    assert for_you([1, 2], neighbours, exclude=[12]) == [11, 10]
    assert for_you([], neighbours) == []


def test_rules_pin_exclude_allowed_and_count():
    out = apply_rules([5, 6, 7, 8], count=3, allowed={5, 6, 7, 8, 9}, exclude=[6], pin=[9, 4])
    assert out == [9, 5, 7]  # 4 is not allowed (unpublished): never shown, even pinned


def test_rules_max_per_category_and_diversity():
    cats = {1: "a", 2: "a", 3: "a", 4: "b", 5: "c"}
    assert apply_rules([1, 2, 3, 4, 5], count=5, categories=cats, max_per_category=2) == [
        1,
        2,
        4,
        5,
    ]
    assert apply_rules([1, 2, 3, 4, 5], count=4, categories=cats, diversify=True) == [1, 4, 5, 2]
    assert apply_rules([1, 1, 2], count=5) == [1, 2]


def test_the_worker_writes_at_once_when_too_many_pairs_wait_and_not_before(settings, monkeypatch):
    """The batches add their increments straight into what the worker gathers
    (:func:`recommendations.buffer.gathering`); the pairs waiting are counted from an upper
    bound (every increment a new pair), and exactly once the bound is reached: a repeated
    pair does not bring the write forward, the MAX_PENDING-th distinct pair does."""
    from recommendations import buffer
    from recommendations.scoring import EPOCH

    settings.RECOMMENDATIONS_FLUSH_SECONDS = 3600
    written = []
    monkeypatch.setattr(buffer, "save", lambda deltas: written.append(deltas.pairs))
    monkeypatch.setattr(buffer, "MAX_PENDING", 6)
    buffer.discard()
    try:
        recent = Recent([1])
        for _ in range(5):  # the same pair (1, 2) both ways, five times: two pairs
            with buffer.gathering() as deltas:
                deltas.add_events(
                    recent, [(EPOCH, 2, 1.0, False)], [], half_life_seconds=DAY, keep=1
                )
            recent = Recent([1])
        assert written == [] and buffer.pending_links(1) == {2: pytest.approx(5.0)}
        with buffer.gathering() as deltas:  # (2, 3), (3, 2): four pairs
            deltas.add_events(
                Recent([2]), [(EPOCH, 3, 1.0, False)], [], half_life_seconds=DAY, keep=1
            )
        assert written == []
        with buffer.gathering() as deltas:  # (3, 4), (4, 3): six
            deltas.add_events(
                Recent([3]), [(EPOCH, 4, 1.0, False)], [], half_life_seconds=DAY, keep=1
            )
        assert len(written) == 1 and len(written[0]) == 6
        assert buffer.pending_links(1) == {}
    finally:
        buffer.discard()
