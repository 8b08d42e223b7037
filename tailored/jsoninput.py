"""JSON from the outside (a request body, a form field, a file being imported), read defensively.

Every place that parses JSON it did not write itself goes through :func:`loads`: the endpoints'
body parser (``consent.api.JSONParser``), the rule builder's check endpoint, the segment form's
rule field. The standard library's ``json.loads`` accepts things that later break the server or
mislead it; :func:`loads` refuses them with :class:`JSONInputError` (a ``ValueError``) whose
message says what is wrong:

- nesting deeper than ``max_depth`` (the standard library recurses, and a few thousand ``[``
  raise ``RecursionError``, which is not a ``ValueError``; any code walking the value recurses
  too). The depth is measured before parsing, in one pass, without recursion;
- a document larger than ``max_bytes``;
- an object with the same key twice (``{"name": "a", "name": "b"}``: which one counts would
  depend on the reader, so a check could see one value and the store the other);
- ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON;
- text that is not UTF-8, and strings (values or keys) holding ``\\u0000`` or an unpaired
  surrogate (``\\ud800``): PostgreSQL's ``jsonb`` cannot store the first, UTF-8 cannot encode
  the second, so either would fail later, far from the request.

Pure: imports nothing from Django.
"""

import json
import re
from typing import Any

__all__ = ["MAX_DEPTH", "STORABLE_TEXT_PATTERN", "JSONInputError", "loads"]

# Deeper than any document of the suite: a rule nests at most 8 conditions (segments' rule
# engine), an event batch 4 levels.
MAX_DEPTH = 32

# A JSON string (escapes included); what is left once they are removed has its brackets only
# where they nest. An unterminated string leaves its brackets in: the text is refused anyway.
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET_RE = re.compile(r"[\[\]{}]")
# A NUL or a surrogate code point (paired surrogates are decoded into one character by
# json.loads, so any left in a string are unpaired).
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
# A string loads() accepts, as a JSON Schema (ECMA) pattern, for the OpenAPI schema.
STORABLE_TEXT_PATTERN = "^[^\\u0000\\ud800-\\udfff]*$"


class JSONInputError(ValueError):
    """JSON that :func:`loads` refuses; the message says why, in one line. ``malformed`` is
    true when the text is not JSON at all (a syntax error, not UTF-8), false when it is JSON
    that is refused (too deep, a duplicate key...)."""

    def __init__(self, message: str, *, malformed: bool = False):
        super().__init__(message)
        self.malformed = malformed


def _refuse_constant(name: str):
    raise JSONInputError(f"{name} is not a JSON number.")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise JSONInputError(f"The key {key[:64]!r} appears twice in one object.")
            seen.add(key)
    return result


def depth(text: str) -> int:
    """How deeply arrays and objects nest in ``text`` (0 for a scalar), without parsing it."""
    deepest = level = 0
    for match in _BRACKET_RE.finditer(_STRING_RE.sub("", text)):
        if match.group() in "[{":
            level += 1
            deepest = max(deepest, level)
        else:
            level -= 1
    return deepest


def _check_strings(value: Any) -> None:
    # Iterative: the value nests at most max_depth levels, but no recursion is needed.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings = (item,)
        elif isinstance(item, dict):
            strings = item.keys()
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            continue
        for text in strings:
            found = _UNSTORABLE_RE.search(text)
            if found:
                what = "a NUL character" if found.group() == "\x00" else "an unpaired surrogate"
                raise JSONInputError(f"A string holds {what} (\\u{ord(found.group()):04x}).")


def loads(
    data: bytes | bytearray | str,
    *,
    max_bytes: int | None = None,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """Parse JSON from outside; raise :class:`JSONInputError` for anything refused (see the
    module docstring). ``max_bytes`` bounds the size (UTF-8 bytes); ``None``: the caller has
    bounded it already (a body parser reads at most its bound)."""
    if isinstance(data, bytes | bytearray):
        if max_bytes is not None and len(data) > max_bytes:
            raise JSONInputError(f"The JSON is larger than {max_bytes} bytes.")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONInputError("The JSON is not UTF-8 text.", malformed=True) from exc
    else:
        text = data
        if max_bytes is not None and len(text) > max_bytes:  # each character is 1+ bytes
            raise JSONInputError(f"The JSON is larger than {max_bytes} bytes.")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:  # a surrogate in the text itself
            raise JSONInputError("The JSON is not UTF-8 text.", malformed=True) from exc
        if max_bytes is not None and size > max_bytes:
            raise JSONInputError(f"The JSON is larger than {max_bytes} bytes.")
    if depth(text) > max_depth:
        raise JSONInputError(f"The JSON nests more than {max_depth} levels deep.")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except JSONInputError:
        raise
    except (ValueError, RecursionError) as exc:  # RecursionError: cannot happen past depth()
        raise JSONInputError(_describe(exc), malformed=True) from exc
    _check_strings(value)
    return value


def _describe(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"The JSON is malformed ({exc.msg}, at character {exc.pos})."
    return "The JSON is malformed."
