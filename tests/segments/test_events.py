"""Unit tests for event validation and the stream wire format (segments.events)."""

import json

import pytest

from segments.events import (
    MAX_ENCODED,
    MAX_PROPERTIES,
    MAX_STRING,
    Event,
    EventError,
    decode,
    encode,
    validate,
)

T = 1_700_006_400.0


def test_limits():
    assert (MAX_PROPERTIES, MAX_STRING, MAX_ENCODED) == (32, 512, 4096)
    assert issubclass(EventError, ValueError)


# -- validate: names ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "page_view", "x1_2", "a" * 64, "signup_2024"])
def test_valid_names(name):
    assert validate(name, None) == {}


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "Page_view",
        "1abc",
        "_a",
        "a" * 65,
        "page-view",
        "page view",
        "page.view",
        "pag\u00e9",
        " page_view",
        None,
        5,
        b"page_view",
        ["page_view"],
    ],
)
def test_invalid_names(name):
    with pytest.raises(EventError, match="Event name must be 1-64 characters"):
        validate(name, {})


def test_name_with_trailing_newline_is_refused():
    # Regression (fixed):
    # NAME_RE ends in ``$``, which also matches just before a trailing newline.
    with pytest.raises(EventError):
        validate("page_view\n", None)


# -- validate: properties -------------------------------------------------------------------


def test_valid_properties_are_returned_as_a_new_plain_dict():
    props = {
        "path": "/shop/",
        "count": 3,
        "price": 9.99,
        "negative": -1,
        "zero": 0,
        "flag": True,
        "off": False,
        "nothing": None,
        "_private": "x",
        "CamelCase": "y",
        "k" * 64: "z",
        "long": "s" * MAX_STRING,
        "empty": "",
    }
    clean = validate("purchase", props)
    assert clean == props
    assert clean is not props
    assert type(clean) is dict


@pytest.mark.parametrize("properties", [[], [("a", 1)], "a=1", 5, 1.5, True, ("a",)])
def test_properties_must_be_an_object(properties):
    with pytest.raises(EventError, match="must be an object"):
        validate("page_view", properties)


def test_empty_properties():
    assert validate("page_view", {}) == {}
    assert validate("page_view", None) == {}


def test_at_most_32_properties():
    ok = {f"p{i}": i for i in range(MAX_PROPERTIES)}
    assert validate("page_view", ok) == ok
    too_many = {f"p{i}": i for i in range(MAX_PROPERTIES + 1)}
    with pytest.raises(EventError, match="at most 32 properties"):
        validate("page_view", too_many)


@pytest.mark.parametrize(
    "key", ["", "1a", "a-b", "a b", "a.b", "k" * 65, 5, None, ("a",), "\u00e9"]
)
def test_invalid_property_names(key):
    with pytest.raises(EventError, match="Invalid property name"):
        validate("page_view", {key: 1})


def test_invalid_property_name_is_truncated_in_message():
    with pytest.raises(EventError) as info:
        validate("page_view", {"-" * 1000: 1})
    assert len(str(info.value)) < 100


@pytest.mark.parametrize(
    "value",
    [{"a": 1}, [1, 2], (1,), {1}, b"bytes", object(), {"email": "a@example.com"}, [], {}],
)
def test_nested_or_unknown_values_are_refused(value):
    with pytest.raises(EventError, match="must be a string, number, boolean or null"):
        validate("page_view", {"data": value})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused(value):
    with pytest.raises(EventError, match="'x' must be a finite number"):
        validate("page_view", {"x": value})


def test_oversized_string_is_refused():
    with pytest.raises(EventError, match="longer than 512 characters"):
        validate("page_view", {"path": "s" * (MAX_STRING + 1)})


def test_first_problem_stops_validation():
    with pytest.raises(EventError, match="'b'"):
        validate("page_view", {"a": 1, "b": [1], "c": float("nan")})


# -- encode / decode ------------------------------------------------------------------------


def test_event_defaults():
    a = Event(visitor_key="k", name="page_view", ts=T)
    b = Event(visitor_key="k", name="page_view", ts=T)
    assert len(a.event_id) == 32
    int(a.event_id, 16)
    assert a.event_id != b.event_id
    assert a.properties == {}


def test_encode_format():
    event = Event(
        visitor_key="vk",
        name="page_view",
        ts=T + 0.123456,
        event_id="abc",
        properties={"path": "/caf\u00e9/", "n": 1},
    )
    fields = encode(event)
    assert set(fields) == {"k", "d"}
    assert fields["k"] == "vk"
    assert fields["d"] == (
        '{"n":"page_view","t":' + repr(round(T + 0.123456, 3)) + ',"i":"abc",'
        '"p":{"path":"/caf\u00e9/","n":1}}'
    )
    assert json.loads(fields["d"])["t"] == 1700006400.123


def test_encode_decode_round_trip():
    event = Event(
        visitor_key="0123456789abcdef0123456789abcdef",
        name="purchase",
        ts=T + 1.5,
        properties=validate("purchase", {"sku": "A-1", "price": 12.5, "gift": False, "n": None}),
    )
    assert decode(encode(event)) == event


def test_decode_rounds_timestamp_to_milliseconds():
    event = Event(visitor_key="k", name="a", ts=T + 0.0004, event_id="x")
    assert decode(encode(event)) == Event(visitor_key="k", name="a", ts=T, event_id="x")


def test_encode_oversized_event():
    props = validate("page_view", {f"p{i}": "s" * MAX_STRING for i in range(10)})
    with pytest.raises(EventError, match="larger than 4096"):
        encode(Event(visitor_key="k", name="page_view", ts=T, properties=props))


def test_encode_largest_valid_event_fits():
    # Seven 512-character strings stay under the limit.
    props = validate("page_view", {f"p{i}": "s" * MAX_STRING for i in range(7)})
    fields = encode(Event(visitor_key="k", name="page_view", ts=T, properties=props))
    assert len(fields["d"]) <= MAX_ENCODED


def test_encode_limit_is_in_bytes():
    # Regression (fixed):
    # encode compares len(body) (characters, ensure_ascii=False) with a limit that
    # its message states in bytes; multi-byte text gets through at up to ~4x the size.
    props = validate("page_view", {f"p{i}": "\u00e9" * 500 for i in range(7)})
    event = Event(visitor_key="k", name="page_view", ts=T, properties=props)
    try:
        fields = encode(event)
    except EventError:
        return
    assert len(fields["d"].encode()) <= MAX_ENCODED


def test_huge_integer_is_refused_with_event_error():
    # Regression (fixed):
    # validate accepts any int; json.dumps then raises a plain ValueError
    # ("Exceeds the limit (4300 digits) ...") instead of EventError.
    with pytest.raises(EventError):
        props = validate("purchase", {"n": 10**5000})
        encode(Event(visitor_key="k", name="purchase", ts=T, properties=props))


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"k": "a"},
        {"d": '{"n":"a","t":1,"i":"x"}'},  # no visitor key
        {"k": "a", "d": ""},
        {"k": "a", "d": "not json"},
        {"k": "a", "d": "{"},
        {"k": "a", "d": "[]"},
        {"k": "a", "d": "[1, 2]"},
        {"k": "a", "d": '"string"'},
        {"k": "a", "d": "42"},
        {"k": "a", "d": "null"},
        {"k": "a", "d": "{}"},
        {"k": "a", "d": '{"n":"a","i":"x"}'},  # no time
        {"k": "a", "d": '{"t":1,"i":"x"}'},  # no name
        {"k": "a", "d": '{"n":"a","t":1}'},  # no id
        {"k": "a", "d": '{"n":"a","t":"abc","i":"x"}'},
        {"k": "a", "d": '{"n":"a","t":null,"i":"x"}'},
        {"k": "a", "d": '{"n":"a","t":[1],"i":"x"}'},
        {"k": "a", "d": 5},
        {"k": "a", "d": None},
        {"k": "a", "d": b"\xff\xfe\x00"},
        None,
        "garbage",
        42,
        [],
    ],
)
def test_decode_garbage_returns_none(fields):
    assert decode(fields) is None


def test_decode_deeply_nested_json_returns_none():
    # Regression (fixed):
    # json.loads raises RecursionError (not a ValueError) on deeply nested input, and
    # decode lets it escape instead of returning None.
    assert decode({"k": "a", "d": "[" * 100_000}) is None


@pytest.mark.parametrize(
    "body",
    [
        '{"n":"a","t":Infinity,"i":"x"}',
        '{"n":"a","t":NaN,"i":"x"}',
        '{"n":5,"t":1,"i":"x"}',
        '{"n":"Not A Name","t":1,"i":"x"}',
        '{"n":"a","t":1,"i":"x","p":[1,2]}',
    ],
)
def test_decode_rejects_bodies_that_are_not_valid_events(body):
    # Regression (fixed):
    # decode checks only that the keys exist, so an entry with a non-finite time
    # (json accepts Infinity/NaN), a bad name or non-object properties decodes to an Event;
    # a non-finite ``ts`` then makes Profile.apply raise (int(inf // 60)) in the worker.
    assert decode({"k": "a", "d": body}) is None


def test_decode_missing_or_null_properties_are_empty():
    assert decode({"k": "a", "d": '{"n":"a","t":1,"i":"x"}'}) == Event("a", "a", 1.0, "x", {})
    assert decode({"k": "a", "d": '{"n":"a","t":1,"i":"x","p":null}'}) == Event(
        "a", "a", 1.0, "x", {}
    )


def test_decode_ignores_extra_fields():
    event = decode({"k": "a", "d": '{"n":"a","t":2.5,"i":"x","extra":1}', "other": "y"})
    assert event == Event("a", "a", 2.5, "x", {})


def test_generated_event_ids_are_random_version_4_uuids():
    import uuid

    from segments.events import new_event_id

    ids = {new_event_id() for _ in range(2000)}
    assert len(ids) == 2000
    for value in list(ids)[:200]:
        parsed = uuid.UUID(value)
        assert parsed.hex == value and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_string_that_is_not_unicode_text_is_refused_not_crashed_on():
    # A lone surrogate is a Python str but has no UTF-8 form: refused by validation, and by
    # encoding should an unvalidated one get there.
    with pytest.raises(EventError, match="'label' is not valid Unicode text"):
        validate("page_view", {"label": "bad \ud800 text"})
    with pytest.raises(EventError, match="cannot be encoded"):
        encode(Event(visitor_key="k", name="page_view", ts=T, properties={"l": "\ud800"}))


def test_decode_refuses_what_is_not_one_of_our_events():
    ok = encode(Event(visitor_key="k", name="a", ts=T, event_id="x"))
    assert decode(ok) is not None
    for broken in (
        {"k": "k", "d": "not json"},
        {"k": "k", "d": "[1, 2]"},
        {"k": "k", "d": '{"n":"a","t":NaN,"i":"x"}'},
        {"k": "k", "d": '{"n":"A","t":1,"i":"x"}'},
        {"k": "k", "d": '{"n":"a","t":1,"i":"x","p":[1]}'},
        {"k": 1, "d": ok["d"]},
        {"d": ok["d"]},
    ):
        assert decode(broken) is None, broken


# -- validate: block and variant ids ------------------------------------------------------------
def test_block_and_variant_ids_are_kept_whatever_their_digits():
    """Wagtail gives blocks and variants UUIDs; one whose groups are all digits looks like a
    phone number written with dashes to the redaction ("…-4499-4416-2718-…"), and its
    impressions were refused: about one variant in three hundred vanished from the report."""
    block = "2aef60be-4499-44e2-927b-d9b235920cb8"
    variant = "08623328-4499-4416-2718-ea73e9d66704"
    clean = validate("impression", {"block": block, "variant": variant, "page": 3})
    assert clean == {"block": block, "variant": variant, "page": 3}
    assert validate("click", {"block": block, "variant": variant})["variant"] == variant


def test_a_phone_number_sent_as_a_variant_is_still_redacted_and_refused():
    with pytest.raises(EventError, match="needs 'variant'"):
        validate("impression", {"block": "b1", "variant": "020-7946-0958"})
    assert validate("page_view", {"note": "08623328-4499-4416-2718-ea73e9d66704"})["note"] != (
        "08623328-4499-4416-2718-ea73e9d66704"
    )  # only block and variant ids are exempt


@pytest.mark.parametrize(
    "given",
    [
        "1b4e28ba2fa111d2883f0016d3cca427",  # as the log keys it: given back
        "1B4E28BA2FA111D2883F0016D3CCA427",
        "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        "{1b4e28ba-2fa1-11d2-883f-0016d3cca427}",
        "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    ],
)
def test_the_log_keys_every_spelling_of_an_event_id_alike(given):
    import uuid

    from segments.events.log import uid

    assert uid(given) == "1b4e28ba2fa111d2883f0016d3cca427"
    assert uid(uuid.UUID(given)) == "1b4e28ba2fa111d2883f0016d3cca427"


@pytest.mark.parametrize(
    "given", ["g" * 32, "0" * 31 + "-", "0" * 31, "0" * 33, "0" * 31 + "\x00", ""]
)
def test_an_event_id_that_is_not_a_uuid_is_refused_by_the_log(given):
    from segments.events.log import uid

    with pytest.raises(ValueError):
        uid(given)
