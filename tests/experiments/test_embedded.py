"""The same engine on the embedded backend (the zero-setup demo): sticky arms come back with the
memberships in the one exchange, the drain enrols and counts goals once."""

import pytest
from wagtail.models import Page

from experiments import runtime
from experiments.models import Assignment, Statistic
from segments.api import get_backend
from tests.experiments.engine import consented, drain, experiment, redeliver, send

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def embedded(settings):
    settings.SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.embedded.EmbeddedBackend",
        "OPTIONS": {"PARTITIONS": 2},
    }
    runtime.forget()
    backend = get_backend()
    assert type(backend).__name__ == "EmbeddedBackend"
    yield backend
    backend.flush()
    runtime.forget()


def test_enrolment_sticky_arm_and_goals_on_the_embedded_backend():
    page = Page.objects.get(depth=1)
    e = experiment(page=page, arms=(("default", 0.0), ("v1", 1.0)))
    key = consented("embedded-1")
    assert send(key, page=page.pk).assignments == {}
    drain(key)
    assert Assignment.objects.get(experiment=e, visitor_key=key).arm == 1
    result = send(key, "purchase")
    assert result.assignments == {str(e.pk): "1:1"}
    assert result.segments_at(result.now) == frozenset()  # never read as a segment
    entries = drain(key)
    redeliver(key, entries)
    cell = Statistic.objects.get(experiment=e, arm=1, segment="")
    assert (cell.n, cell.sum) == (1, 1)
