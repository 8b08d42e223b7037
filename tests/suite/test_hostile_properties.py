"""Property-based hostile input (Hypothesis) against every reader of outside input: the JSON
reader, the event endpoint, the consent endpoint, the rule validator and the import reader.
Random JSON, random Unicode (NUL and lone surrogates included), huge and deep values, duplicate
keys, bytes that are not UTF-8. Each reader answers a clear refusal or a result, never another
exception, and a refused request writes nothing.

Fast by default; ``TAILORED_LONG_FUZZ=1`` raises the number of examples (docs/testing.md).
"""

import gzip
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.models import ConsentRecord
from segments.api import describe_rule, rule_problems
from segments.events.importer import ImportFileError, open_rows
from segments.models import LoggedEvent
from tailored.jsoninput import MAX_DEPTH, JSONInputError, loads
from tests.builders import browser, consenting_browser, demo_site

LONG = os.environ.get("TAILORED_LONG_FUZZ") == "1"


def examples(fast: int) -> settings:
    return settings(
        max_examples=fast * 20 if LONG else fast,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,  # no example database written into the work tree
    )


# -- strategies ------------------------------------------------------------------------------------
# Any code point, surrogates and NUL included (Hypothesis leaves surrogates out by default).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
    | st.sampled_from(["click", "purchase", "impression", "page_view", "", "\x00", "\ud800"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            any_text | st.sampled_from(["name", "type", "events"]), children, max_size=5
        )
    ),
    max_leaves=25,
)


@st.composite
def hostile_json_text(draw) -> str:
    """JSON text as an attacker writes it: valid documents (NaN, lone surrogates and NUL as
    escapes), a key twice, deep nesting, truncation, or random characters."""
    kind = draw(st.sampled_from(["value", "duplicate", "deep", "truncated", "noise"]))
    if kind == "value":
        return json.dumps(draw(json_values))  # ensure_ascii: \ud800 and \u0000 as escapes
    if kind == "duplicate":
        key = json.dumps(draw(st.sampled_from(["name", "events", "action", "type"]) | any_text))
        a, b = (json.dumps(draw(json_values)) for _ in range(2))
        return f"{{{key}: {a}, {key}: {b}}}"
    if kind == "deep":
        depth = draw(st.integers(min_value=MAX_DEPTH - 2, max_value=3000))
        opener = draw(st.sampled_from(["[", '{"a":']))
        closer = "]" if opener == "[" else "}"
        return opener * depth + "1" + closer * depth
    if kind == "truncated":
        text = json.dumps(draw(json_values))
        return text[: draw(st.integers(min_value=0, max_value=len(text)))]
    return draw(any_text)


def as_events(value) -> str:
    """A body shaped like an event batch around a hostile part, or the hostile text alone."""
    return '{"events": [{"name": "click", "properties": ' + value + "}]}"


# -- the JSON reader (pure) ------------------------------------------------------------------------
@examples(300)
@given(st.one_of(hostile_json_text(), any_text, st.binary(max_size=200)))
def test_the_json_reader_returns_a_value_or_refuses_with_its_error(data):
    try:
        value = loads(data)
    except JSONInputError as exc:
        assert str(exc)
        return
    # What it accepts, the standard library reads the same, and PostgreSQL can store.
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    assert json.dumps(value, allow_nan=False) == json.dumps(json.loads(text))
    assert "\\u0000" not in json.dumps(value)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # no unpaired surrogate


# -- the rule validator (pure) ---------------------------------------------------------------------
conditions = st.fixed_dictionaries(
    {"type": st.sampled_from(["event_count", "all", "any", "not", "context", "recency", "x"])},
    optional={
        "event": json_values,
        "min": json_values,
        "max": json_values,
        "window": json_values | st.sampled_from(["10m", "999999d", "-1h", "1e9s"]),
        "op": json_values | st.sampled_from(["eq", "in", "gte", "exists"]),
        "value": json_values,
        "attribute": json_values | st.sampled_from(["language", "path", "device"]),
        "conditions": st.lists(json_values, max_size=3),
        "condition": json_values,
    },
)
rules = st.recursive(
    conditions | json_values,
    lambda children: (
        st.fixed_dictionaries(
            {"type": st.sampled_from(["all", "any"]), "conditions": st.lists(children, max_size=4)}
        )
        | st.fixed_dictionaries({"type": st.just("not"), "condition": children})
    ),
    max_leaves=20,
)


@examples(300)
@given(rules)
def test_the_rule_validator_reports_problems_and_never_raises(rule):
    problems = rule_problems(rule)
    assert isinstance(problems, list)
    assert all(isinstance(path, str) and isinstance(message, str) for path, message in problems)
    assert isinstance(describe_rule(rule), str)


@examples(100)
@given(st.integers(min_value=9, max_value=MAX_DEPTH))
def test_a_rule_nested_to_the_readers_limit_is_refused_by_the_engine_not_the_interpreter(depth):
    rule = {"type": "event_count", "event": "page_view", "min": 1}
    for _ in range(depth):
        rule = {"type": "not", "condition": rule}
    assert rule_problems(rule)  # nested deeper than the engine's MAX_DEPTH (8)
    assert isinstance(describe_rule(rule), str)


# -- the import reader -----------------------------------------------------------------------------
file_lines = st.lists(
    hostile_json_text() | any_text | st.just("\x00") | st.just('{"a": 1, "a": 2}'), max_size=5
)


@st.composite
def import_files(draw) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".jsonl", ".ndjson", ".json", ".csv"]))
    raw = draw(
        st.one_of(
            file_lines.map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")),
            st.binary(max_size=300),
        )
    )
    if draw(st.booleans()):
        return suffix + ".gz", gzip.compress(raw) if draw(st.booleans()) else raw[:20]
    return suffix, raw


@examples(150)
@given(import_files())
def test_the_import_reader_returns_rows_or_raises_its_documented_error(file):
    suffix, raw = file
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"export{suffix}"
        path.write_bytes(raw)
        try:
            rows = list(open_rows(path))
        except ImportFileError:
            return
    assert all(isinstance(row, dict) for row in rows)


# -- the event endpoint ----------------------------------------------------------------------------
def stream_length(backend) -> int:
    return sum(backend.client.xlen(backend._stream(p)) for p in range(backend.partitions))


@pytest.fixture
def visitor(backend, settings):
    demo_site()
    settings.SEGMENTS_EVENT_RATE = settings.SEGMENTS_EVENT_VISITOR_RATE = None
    settings.CONSENT_RATE = None
    return consenting_browser()


event_bodies = st.one_of(
    hostile_json_text(),
    hostile_json_text().map(as_events),
    st.builds(
        lambda events: json.dumps({"events": events}),
        st.lists(
            st.fixed_dictionaries(
                {"name": any_text | st.sampled_from(["click", "purchase"])},
                optional={"properties": json_values, "event_id": json_values},
            ),
            max_size=3,
        ),
    ),
    st.binary(max_size=200),
)


@pytest.mark.services
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@examples(60)
@given(body=event_bodies, content_type=st.sampled_from(["application/json", "text/plain"]))
def test_the_event_endpoint_refuses_hostile_bodies_and_writes_nothing(
    visitor, backend, body, content_type
):
    before = (LoggedEvent.objects.count(), stream_length(backend), backend.profile_count())
    response = visitor.post(
        "/api/events/", body, content_type=content_type, HTTP_ORIGIN="http://testserver"
    )
    assert response.status_code in (202, 400, 413), response.content[:300]
    assert response["Content-Type"] == "application/json"
    if response.status_code != 202:
        assert set(response.json()) == {"error"}
        assert (LoggedEvent.objects.count(), stream_length(backend)) == before[:2]
        assert backend.profile_count() == before[2]
        return
    # Whatever was accepted is storable: no NUL, no unpaired surrogate in the durable log.
    for row in LoggedEvent.objects.exclude(name="page_view").values_list("properties", flat=True):
        text = json.dumps(row, ensure_ascii=False)
        assert "\x00" not in text
        text.encode("utf-8")


# -- the consent endpoint --------------------------------------------------------------------------
consent_bodies = st.one_of(
    hostile_json_text(),
    st.builds(
        json.dumps,
        st.fixed_dictionaries(
            {"action": json_values | st.sampled_from(["custom", "accept_all", "withdraw"])},
            optional={"purposes": json_values | st.lists(any_text, max_size=3)},
        ),
    ),
    st.binary(max_size=200),
)


@pytest.mark.services
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@examples(60)
@given(body=consent_bodies)
def test_the_consent_endpoint_refuses_hostile_json_and_records_nothing(backend, settings, body):
    settings.CONSENT_RATE = None
    before = ConsentRecord.objects.count()
    response = browser().post("/consent/", body, content_type="application/json")
    assert response.status_code in (200, 400, 413), response.content[:300]
    if response.status_code != 200:
        # The envelope, as JSON or (an empty body: nothing says it is JSON) as plain text.
        if response["Content-Type"].startswith("application/json"):
            assert set(response.json()) == {"error"}
        else:
            assert response["Content-Type"].startswith("text/plain") and response.content
        assert ConsentRecord.objects.count() == before
