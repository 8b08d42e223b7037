"""The one reader of JSON from outside (tailored.jsoninput): what it refuses, and why."""

import json

import pytest

from tailored.jsoninput import MAX_DEPTH, JSONInputError, depth, loads


def test_ordinary_json_is_read_as_the_standard_library_reads_it():
    text = (
        '{"events": [{"name": "click", "properties": {"a": 1.5, "b": "x\\u00e9\\ud83d\\ude00"}}]}'
    )
    assert loads(text) == loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[" * 100_000 + "]" * 100_000, "levels deep"),
        ('{"rule": ' + "[" * 5000 + "]" * 5000 + "}", "levels deep"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "levels deep"),
        ('{"name": "a", "name": "b"}', "appears twice"),
        ('{"events": [{"name": "click", "name": "purchase"}]}', "appears twice"),
        ('{"a": NaN}', "NaN"),
        ("[Infinity]", "Infinity"),
        ("[-Infinity]", "-Infinity"),
        ('{"a": "x\\u0000y"}', "NUL"),
        ('{"x\\u0000": 1}', "NUL"),
        ('["\\ud800"]', "unpaired surrogate"),
        ('["\\udc00x"]', "unpaired surrogate"),
        ("[1,]", "malformed"),
        ("", "malformed"),
        ("1" * 5000, "malformed"),  # more digits than Python converts
    ],
)
def test_refused_with_a_reason(text, why):
    with pytest.raises(JSONInputError, match=why):
        loads(text)
    with pytest.raises(JSONInputError, match=why):
        loads(text.encode("utf-8", "surrogatepass"))


def test_depth_is_counted_outside_strings_only():
    assert depth('{"a": "[[[[{{{{"}') == 1
    assert depth('["\\"[[", [[]]]') == 3
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    assert loads('"' + "[" * 1000 + '"') == "[" * 1000


def test_size_and_encoding():
    with pytest.raises(JSONInputError, match="larger than 10 bytes"):
        loads(b'"' + b"x" * 20 + b'"', max_bytes=10)
    with pytest.raises(JSONInputError, match="larger than 10 bytes"):
        loads('"' + "é" * 6 + '"', max_bytes=10)  # 8 characters, 14 bytes
    with pytest.raises(JSONInputError, match="not UTF-8"):
        loads(b'"\xff"')
    with pytest.raises(JSONInputError, match="not UTF-8"):
        loads('"\ud800"')  # a surrogate in the text itself, not an escape
    assert issubclass(JSONInputError, ValueError)
