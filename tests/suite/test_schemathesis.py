"""The HTTP API against its own OpenAPI schema (schemathesis over the Django WSGI app, the
schema as /api/schema/ serves it): valid and invalid requests generated from the schema, every
response checked by schemathesis's checks (no 5xx, a documented status, a body and headers
that conform, invalid data refused, valid data accepted), and nothing written by a request the
API refused. Real PostgreSQL and Redis.

Fast by default (a few examples per operation); ``TAILORED_LONG_FUZZ=1`` runs many more, with
schemathesis's coverage phase (every boundary and every invalid type of every constraint).
"""

import json
import os

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, settings

from consent.models import ConsentRecord
from segments.models import LoggedEvent
from tailored.jsoninput import JSONInputError, loads
from tests.builders import demo_site

pytestmark = [
    pytest.mark.services,
    # The WSGI app closes connections after each request as a server does: outside a test
    # transaction, so each request commits (and the test flushes them after).
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LONG = os.environ.get("TAILORED_LONG_FUZZ") == "1"
EXAMPLES = 300 if LONG else 12


# Loaded when the module is collected (Django is set up by then; serving the schema reads no
# database). schemathesis.pytest.from_fixture would load it per test, but does not run under
# pytest 9 (it reads a private attribute of pytest's nodes).
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", WSGIHandler())
schema.config.phases.coverage.enabled = LONG
# A body over the endpoint's bound is refused with 413 (documented on every operation with a
# body), whatever it holds: a JSON Schema cannot say how many bytes a body may have.
for check in (
    schema.config.checks.negative_data_rejection,
    schema.config.checks.positive_data_acceptance,
):
    check.expected_statuses = [*check.expected_statuses, "413"]


@schema.hook("filter_body")
def _strings_as_the_schema_says(context, body) -> bool:
    """schemathesis's generator does not apply ``propertyNames`` to the keys it adds to an
    object beyond its ``properties`` (the event batch's, and ``StorableJSON``'s: no NUL, no
    unpaired surrogate, as the body reader accepts): leave out the bodies it makes that break
    the schema that way. (The property tests send such strings everywhere.)"""
    try:
        loads(json.dumps(body))
    except (JSONInputError, TypeError, ValueError):
        return False
    return True


@pytest.fixture(autouse=True)
def _site(backend, settings):
    demo_site()
    # Rate limits would answer 429 (documented) after a few requests: test what lies behind.
    settings.SEGMENTS_EVENT_RATE = settings.SEGMENTS_EVENT_VISITOR_RATE = None
    settings.CONSENT_RATE = None


def written(backend) -> tuple:
    stream = sum(backend.client.xlen(backend._stream(p)) for p in range(backend.partitions))
    return ConsentRecord.objects.count(), LoggedEvent.objects.count(), stream


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no example database written into the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_keeps_to_its_schema(case, backend):
    before = written(backend)
    response = case.call_and_validate()
    assert response.status_code < 500
    if response.status_code >= 400:
        assert written(backend) == before, (case.method, case.path, response.status_code)


BOT_UA = "Googlebot/2.1 (+http://www.google.com/bot.html)"


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_a_bot_gets_the_answers_of_the_schema_too(case, backend):
    """A crawler's user agent changes what is recorded (nothing), never what is checked: the
    same validation, the same documented answers, invalid data refused."""
    before = written(backend)
    response = case.call_and_validate(headers={"User-Agent": BOT_UA})
    assert response.status_code < 500
    assert written(backend) == before, (case.method, case.path, response.status_code)
