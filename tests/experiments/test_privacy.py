"""Assignments in privacy export, erasure (with their contribution to the statistics), re-keying
and the record of processing, through the real pipeline (Redis, PostgreSQL)."""

import time

import pytest
from wagtail.models import Page

from consent.actions import rekey
from consent.log import Grants
from consent.privacy import erase_visitor, export_visitor
from consent.processing import processing_record
from experiments import runtime
from experiments.models import Assignment, SplitCount, Statistic
from segments.api import get_backend
from tests.experiments.engine import consented, drain, experiment, send

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture(autouse=True)
def _fresh(backend):
    runtime.forget()
    yield
    runtime.forget()


def _enrolled(page, *names):
    keys = [consented(name) for name in names]
    for key in keys:
        send(key, page=page.pk)
        send(key, "purchase")
        drain(key)
    return keys


def test_export_erase_and_rekey_cover_assignments_and_statistics():
    page = Page.objects.get(depth=1)
    e = experiment(page=page, arms=(("default", 1.0), ("v1", 0.0)))
    alice, bob = _enrolled(page, "privacy-alice", "privacy-bob")
    cell = Statistic.objects.get(experiment=e, arm=0, segment="")
    assert (cell.n, cell.sum) == (2, 2)
    split = SplitCount.objects.get(experiment=e, arm=0)
    assert (split.split, split.n) == ("0:1,1:0", 2)

    exported = export_visitor(alice)
    [row] = exported["experiments.assignments"]
    assert row["experiment"] == e.key and row["arm"] == 0 and row["exposures"] == 1
    assert list(row["goal_values"].values()) == [1.0]
    assert row["split"] == "0:1,1:0"
    assert exported["experiments.sticky_assignments"] == [
        {"experiment": str(e.pk), "assignment": "1:0"}
    ]

    erase_visitor(alice)
    assert not Assignment.objects.filter(visitor_key=alice).exists()
    assert not any(f.startswith("x:") for f in get_backend().visitor_data(alice).fields)
    cell.refresh_from_db()
    assert (cell.n, cell.sum, cell.sum_squares) == (1, 1, 1)  # only Bob counts now
    split.refresh_from_db()
    assert split.n == 1

    new = "b" * 32
    rekey(bob, new, Grants(frozenset({"personalization"}), "1", time.time() + 3600, "void"))
    assert Assignment.objects.get(experiment=e).visitor_key == new
    assert get_backend().visitor_data(new).fields.get(f"x:{e.pk}") == "1:0"


def test_the_processing_record_lists_experimentation_under_personalization():
    record = processing_record()
    text = str(record)
    assert "Experiment assignments (personalization)" in text
