"""Experiments on the request path, against real Redis and PostgreSQL: a consented visitor's
arm decides the block (and the page's variants) with the page view's one round trip and no
query; sticky arms, holdouts, consent, the headless API and cache-safe mode."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import personalization.visitor
from consent.models import ConsentRecord
from experiments import runtime
from experiments.models import Assignment, Experiment
from tests.builders import (
    browser,
    consenting_browser,
    home_page,
    page_variant,
    personalised_page,
    segment,
)
from tests.experiments.engine import drain, experiment

pytestmark = [pytest.mark.services, pytest.mark.django_db]

DEFAULT, VARIANT = "Standard offer", "ENGAGED offer"


@pytest.fixture(autouse=True)
def _fresh(backend, monkeypatch):
    runtime.forget()
    # The drain runs when the test says so (drain(key)), not inside the request: what a
    # request costs is then the request's own.
    monkeypatch.setattr(personalization.visitor, "schedule_drain", lambda key: None)
    yield
    runtime.forget()


@pytest.fixture
def round_trips(backend, monkeypatch):
    calls = []
    real = backend.exchange

    def counting(*args, **kwargs):
        calls.append(bool(kwargs.get("events")))
        return real(*args, **kwargs)

    monkeypatch.setattr(backend, "exchange", counting)
    return calls


@pytest.fixture
def page():
    home_page()
    segment("engaged")
    return personalised_page()


def keys_of(page):
    block = page.body[0]
    return block.id, block.value["variants"].bound_blocks[0].id


def block_experiment(page, arms, **fields) -> Experiment:
    block_id, variant = keys_of(page)
    return experiment(
        page=page,
        block_id=block_id,
        arms=[(variant if shows == "v" else shows, w) for shows, w in arms],
        **fields,
    )


def visitor_key(client) -> str:
    return ConsentRecord.objects.order_by("-pk").first().visitor_key


def shown(client, path="/offers/") -> str:
    html = client.get(path).content.decode()
    assert (DEFAULT in html) != (VARIANT in html), html
    return VARIANT if VARIANT in html else DEFAULT


def test_the_arm_decides_the_block_with_one_round_trip_and_no_query(page, round_trips):
    client = consenting_browser()
    key = visitor_key(client)
    e = block_experiment(page, [("default", 1.0), ("v", 1.0)])
    expected = runtime.running().by_id[str(e.pk)].arm(key)
    assert shown(client) == (VARIANT if expected == 1 else DEFAULT)
    drain(key)
    assert Assignment.objects.get(experiment=e, visitor_key=key).arm == expected
    client.get("/offers/")  # warm: this process's caches (definitions, variant index)
    round_trips.clear()
    with CaptureQueriesContext(connection) as running:
        assert shown(client) == (VARIANT if expected == 1 else DEFAULT)
    assert round_trips == [True]  # one call, carrying the page view, read the sticky arm
    Experiment.objects.filter(pk=e.pk).update(status=Experiment.Status.PAUSED)
    runtime.forget()
    client.get("/offers/")
    with CaptureQueriesContext(connection) as paused:
        client.get("/offers/")
    assert [q["sql"] for q in running.captured_queries] == [
        q["sql"] for q in paused.captured_queries
    ]  # the experiment costs the request no query


def test_a_visitor_without_consent_sees_the_default_and_nothing_is_recorded(page, round_trips):
    e = block_experiment(page, [("default", 0.0), ("v", 1.0)])
    assert shown(browser()) == DEFAULT
    refused = browser()
    refused.post("/consent/", {"action": "reject_all"})
    assert shown(refused) == DEFAULT
    assert round_trips == []
    assert not Assignment.objects.filter(experiment=e).exists()


def test_sticky_arms_survive_weight_and_coverage_changes_and_a_version_bump_rerandomises(page):
    e = block_experiment(page, [("default", 0.0), ("v", 1.0)])
    client = consenting_browser()
    key = visitor_key(client)
    assert shown(client) == VARIANT
    drain(key)
    e.arms.filter(index=0).update(weight=1.0)
    e.arms.filter(index=1).update(weight=0.0)
    e.coverage = 0.999
    e.save()
    assert shown(consenting_browser()) == DEFAULT  # a new visitor follows the new weights
    assert shown(client) == VARIANT  # the enrolled one keeps their arm (sticky, from Redis)
    e.assignment_version = 2
    e.save()
    assert shown(client) == DEFAULT  # re-randomised on purpose
    drain(key)
    a = Assignment.objects.get(experiment=e, visitor_key=key)
    assert (a.arm, a.assignment_version) == (0, 2)


def test_the_experiments_own_holdout_sees_the_default(page):
    e = block_experiment(page, [("default", 0.0), ("v", 1.0)], holdout_percent=100)
    client = consenting_browser()
    assert shown(client) == DEFAULT
    drain(visitor_key(client))
    assert Assignment.objects.get(experiment=e).arm == -1


def test_the_global_holdout_sees_default_content_everywhere(page, settings):
    block_experiment(page, [("default", 0.0), ("v", 1.0)])
    holdout = experiment(
        "global",
        kind=Experiment.Kind.GLOBAL_HOLDOUT,
        arms=(("default", 1.0), ("personalised", 1.0)),
    )
    settings.EXPERIMENTS_GLOBAL_HOLDOUT = 1.0
    client = consenting_browser()
    assert shown(client) == DEFAULT
    drain(visitor_key(client))
    assert Assignment.objects.get(experiment=holdout).arm == 0
    settings.EXPERIMENTS_GLOBAL_HOLDOUT = 0.0
    other = consenting_browser()
    assert shown(other) == VARIANT
    drain(visitor_key(other))
    assert Assignment.objects.get(experiment=holdout, visitor_key=visitor_key(other)).arm == 1


def test_the_headless_api_returns_the_experiment_and_arm(page):
    e = block_experiment(page, [("default", 0.0), ("v", 1.0)])
    _, variant = keys_of(page)
    client = consenting_browser()
    data = client.get(f"/api/personalization/pages/{page.pk}/").json()
    [block] = [b for b in data["fields"]["body"] if b["type"] == "personalised"]
    assert block["value"]["variant"] == variant
    assert block["value"]["experiment"] == e.key and block["value"]["arm"] == variant
    anonymous = browser().get(f"/api/personalization/pages/{page.pk}/").json()
    [block] = [b for b in anonymous["fields"]["body"] if b["type"] == "personalised"]
    assert "experiment" not in block["value"] and block["value"]["variant"] == "default"


def test_a_page_experiment_chooses_among_the_page_variants(page):
    variant = page_variant(page, "engaged", "THE VARIANT PAGE")
    e = experiment(
        "page-test",
        kind=Experiment.Kind.PAGE,
        page=page,
        arms=(("default", 0.0), (str(variant.pk), 1.0)),
    )
    client = consenting_browser()
    assert "THE VARIANT PAGE" in client.get("/offers/").content.decode()
    drain(visitor_key(client))
    a = Assignment.objects.get(experiment=e)
    assert a.arm == 1
    assert not browser().get("/offers/").content.decode().count("THE VARIANT PAGE")


FRENCH = {"type": "context", "attribute": "language", "op": "eq", "value": "fr"}


def test_a_block_experiment_counts_no_visitor_served_a_page_variant_without_its_block(page):
    """The French get a page variant without the personalised block, served at the page's
    URL under its id: the block experiment's arm decided nothing they saw, so the drain
    neither enrols nor counts them; the others, who saw the block, are."""
    segment("french", FRENCH)
    page_variant(page, "french", "LA PAGE FRANÇAISE")
    e = block_experiment(page, [("default", 0.0), ("v", 1.0)])
    french = consenting_browser()
    french_key = visitor_key(french)
    html = french.get("/offers/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "LA PAGE FRANÇAISE" in html and VARIANT not in html and DEFAULT not in html
    assert runtime.running().points is None  # what pages hold: read by the drain, not here
    other = consenting_browser()
    other_key = visitor_key(other)
    assert other_key != french_key
    assert shown(other) == VARIANT
    drain(french_key)
    drain(other_key)
    assert list(Assignment.objects.filter(experiment=e).values_list("visitor_key", "arm")) == [
        (other_key, 1)
    ]


def test_a_variant_made_from_the_page_keeps_its_block_in_the_experiment_html_and_headless(page):
    """A page variant holding the page's block (made from it: the same StreamField id) is
    decided by the block experiment like the page itself, in the page's HTML and in the
    headless API, and its visitors are counted: the block's arm decided what they saw."""
    segment("french", FRENCH)
    variant = page_variant(page, "french", "unused")
    variant.body = [*page.body.raw_data, {"type": "paragraph", "value": "<p>EN FRANÇAIS</p>"}]
    variant.save_revision().publish()
    e = block_experiment(page, [("default", 0.0), ("v", 1.0)])
    block_id, arm_key = keys_of(page)
    french = consenting_browser()
    key = visitor_key(french)
    html = french.get("/offers/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "EN FRANÇAIS" in html and VARIANT in html
    data = french.get(f"/api/personalization/pages/{page.pk}/", HTTP_ACCEPT_LANGUAGE="fr").json()
    assert data["meta"]["variant"]["id"] == variant.pk
    [block] = [b for b in data["fields"]["body"] if b["type"] == "personalised"]
    assert block["id"] == block_id
    assert block["value"]["variant"] == arm_key
    assert (block["value"]["experiment"], block["value"]["arm"]) == (e.key, arm_key)
    drain(key)
    assert Assignment.objects.get(experiment=e, visitor_key=key).arm == 1


def test_a_page_experiments_variant_arm_without_the_block_leaves_the_block_experiment_out(page):
    """A page experiment's arm serves a variant page without the block: its visitors count in
    the page experiment only, never in the block experiment on the canonical page's block."""
    variant = page_variant(page, "engaged", "THE VARIANT PAGE")
    on_page = experiment(
        "page-test",
        kind=Experiment.Kind.PAGE,
        page=page,
        arms=(("default", 0.0), (str(variant.pk), 1.0)),
    )
    on_block = block_experiment(page, [("default", 0.0), ("v", 1.0)], key="block-test")
    client = consenting_browser()
    html = client.get("/offers/").content.decode()
    assert "THE VARIANT PAGE" in html and VARIANT not in html
    drain(visitor_key(client))
    assert Assignment.objects.get(experiment=on_page).arm == 1
    assert not Assignment.objects.filter(experiment=on_block).exists()
    # The page experiment's default arm shows the page with its block: both count.
    on_page.arms.filter(index=0).update(weight=1.0)
    on_page.arms.filter(index=1).update(weight=0.0)
    runtime.forget()
    other = consenting_browser()
    assert shown(other) == VARIANT
    drain(visitor_key(other))
    assert Assignment.objects.get(experiment=on_page, visitor_key=visitor_key(other)).arm == 0
    assert Assignment.objects.get(experiment=on_block, visitor_key=visitor_key(other)).arm == 1


def test_on_the_wire_the_page_view_is_one_evalsha(page, monkeypatch):
    """What the Redis connections send during the page view: one EVALSHA (the exchange script
    records the page view and returns memberships and sticky arms together), nothing else."""
    import re

    from redis.connection import AbstractConnection

    block_experiment(page, [("default", 0.0), ("v", 1.0)])
    client = consenting_browser()
    shown(client)
    drain(visitor_key(client))
    shown(client)  # warm
    sends = []
    original = AbstractConnection.send_packed_command
    command = re.compile(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n")

    def recording(self, packed, check_health=True):
        parts = [packed] if isinstance(packed, bytes | bytearray | str) else packed
        data = b"".join(p.encode() if isinstance(p, str) else bytes(p) for p in parts)
        sends.append([c.decode().upper() for c in command.findall(data)])
        return original(self, packed, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", recording)
    assert shown(client) == VARIANT
    assert sends == [["EVALSHA"]]


class _Clock:
    """``time`` as the definitions caches see it, with a monotonic clock the test moves."""

    def __init__(self):
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.fixture
def clock(monkeypatch, settings):
    import segments.definitions

    # Only the freshness check is due when the clock moves (not the segments' own full
    # re-read, which a page without experiments makes too).
    settings.SEGMENTS_DEFINITIONS_CACHE_SECONDS = 10**9
    fake = _Clock()
    monkeypatch.setattr(segments.definitions, "time", fake)
    monkeypatch.setattr(runtime, "time", fake)
    return fake


def twenty_experiments(page) -> None:
    """Twenty running experiments on the page, as the bench has them: nine on the block for a
    segment the visitor is not in, nine on it for everyone, a holdout of the whole page and
    the global holdout."""
    nobody = segment("nobody", enabled=False)
    for n in range(18):
        block_experiment(page, [("default", 1.0), ("v", 1.0)], key=f"e{n}")
        if n < 9:
            Experiment.objects.filter(key=f"e{n}").update(segment=nobody)
    experiment(
        "page-holdout",
        kind=Experiment.Kind.HOLDOUT,
        page=page,
        arms=(("default", 0.0), ("personalised", 1.0)),
    )
    experiment(
        "global",
        kind=Experiment.Kind.GLOBAL_HOLDOUT,
        arms=(("default", 1.0), ("personalised", 1.0)),
    )


def steady_state_queries(client, clock) -> tuple[list[str], list[str]]:
    """The queries of a page view in steady state, and of one after the freshness check
    interval passed (the caches warm: the page was seen just before)."""
    client.get("/offers/")
    client.get("/offers/")
    with CaptureQueriesContext(connection) as steady:
        shown(client)
    clock.offset += 3600  # past the check interval, and past any old cache lifetime
    with CaptureQueriesContext(connection) as checked:
        shown(client)
    return [q["sql"] for q in steady.captured_queries], [q["sql"] for q in checked.captured_queries]


def test_twenty_running_experiments_add_no_query_in_steady_state(page, clock):
    """A consented page view with 20 running experiments queries nothing of theirs: between
    freshness checks no query of the plugin at all, and when a check is due the one shared
    small query the segments make anyway; the same queries as the page without them."""
    twenty_experiments(page)
    client = consenting_browser()
    key = visitor_key(client)
    shown(client)
    drain(key)  # enrolled: sticky arms in the visitor's hash
    assert len(runtime.running().experiments) == 20
    steady, checked = steady_state_queries(client, clock)
    assert [q for q in steady if "segments_" in q or "experiments_" in q] == []
    plugin = [q for q in checked if "segments_" in q or "experiments_" in q]
    assert len(plugin) == 1 and "COUNT(*)" in plugin[0]  # the shared freshness check
    Experiment.objects.update(status=Experiment.Status.PAUSED)
    runtime.forget()
    assert not runtime.running()
    steady_without, checked_without = steady_state_queries(client, clock)
    assert steady == steady_without
    assert checked == checked_without


def test_an_experiment_another_process_changes_reaches_this_one_at_the_next_check(page, clock):
    """Another process's change (a row changed under this process's copy, no signal here)
    is seen at the shared freshness check, within SEGMENTS_DEFINITIONS_CHECK_SECONDS."""
    e = block_experiment(page, [("default", 0.0), ("v", 1.0)])
    client = consenting_browser()
    assert shown(client) == VARIANT
    Experiment.objects.filter(pk=e.pk).update(
        status=Experiment.Status.PAUSED, updated_at=timezone.now()
    )
    assert shown(client) == VARIANT  # the check is not due yet: no query, the old copy
    clock.offset += 1.1
    assert shown(client) == DEFAULT
    Experiment.objects.filter(pk=e.pk).update(
        status=Experiment.Status.RUNNING, updated_at=timezone.now()
    )
    clock.offset += 1.1
    assert shown(client) == VARIANT
