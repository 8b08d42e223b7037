"""Rule engine: a JSON condition tree compiled once per segment version (pure: no Django).

A rule is a tree of nodes, each a JSON object with a ``type``:

- ``{"type": "all", "conditions": [...]}``, ``{"type": "any", "conditions": [...]}``
- ``{"type": "not", "condition": {...}}``
- ``{"type": "event_count", "event": "page_view", "min": 3, "window": "10m"}``:
  at least ``min`` events named ``event`` in the last ``window`` (``s``, ``m``, ``h`` or ``d``).

:func:`compile_rule` validates the whole tree up front and raises :class:`RuleError` with a
message an editor can act on; a compiled rule never raises at evaluation time. Evaluation
returns whether the visitor matches, *until when* that answer holds if nothing else happens (so
membership can expire on time without traffic), and the reasons in plain words.
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .events import NAME_RE
from .features import MAX_WINDOW, Profile

NEVER = math.inf
_WINDOW_RE = re.compile(r"([0-9]{1,6})([smhd])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}
MAX_DEPTH = 8
MAX_NODES = 64


class RuleError(ValueError):
    """An invalid rule. ``path`` locates the offending node, e.g. ``conditions[1].window``."""

    def __init__(self, message: str, path: str = ""):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


@dataclass(frozen=True, slots=True)
class Outcome:
    matched: bool
    until: float  # the answer holds until this time if no event arrives (NEVER: indefinitely)
    reasons: tuple[str, ...] = field(default_factory=tuple)


Evaluator = Callable[[Profile, float], Outcome]


def parse_window(value: Any, path: str = "window") -> tuple[float, str]:
    if not isinstance(value, str) or not (m := _WINDOW_RE.match(value)):
        raise RuleError("a window is a number followed by s, m, h or d, such as '10m'.", path)
    amount, unit = int(m.group(1)), m.group(2)
    seconds = amount * _UNITS[unit]
    if seconds <= 0:
        raise RuleError("the window must be longer than zero.", path)
    if seconds > MAX_WINDOW:
        raise RuleError(f"the window can be at most {MAX_WINDOW // 86400} days.", path)
    word = _UNIT_WORDS[unit] + ("" if amount == 1 else "s")
    return float(seconds), f"{amount} {word}"


def compile_rule(tree: Any) -> Evaluator:
    """Validate and compile a rule tree into a fast evaluator."""
    counter = [0]
    return _compile(tree, "", 0, counter)


def validate_rule(tree: Any) -> list[str]:
    """All problems of a rule as messages (empty when valid)."""
    try:
        compile_rule(tree)
    except RuleError as exc:
        return [str(exc)]
    return []


def _compile(node: Any, path: str, depth: int, counter: list[int]) -> Evaluator:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise RuleError(f"a rule may have at most {MAX_NODES} conditions.", path)
    if depth > MAX_DEPTH:
        raise RuleError(f"conditions may be nested at most {MAX_DEPTH} deep.", path)
    if not isinstance(node, dict):
        raise RuleError("each condition must be an object with a 'type'.", path)
    kind = node.get("type")
    compiler = _COMPILERS.get(kind) if isinstance(kind, str) else None
    if compiler is None:
        known = ", ".join(sorted(_COMPILERS))
        raise RuleError(f"unknown condition type {kind!r}; expected one of {known}.", path)
    return compiler(node, path, depth, counter)


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _compile_group(node: dict, path: str, depth: int, counter: list[int]) -> Evaluator:
    children = node.get("conditions")
    if not isinstance(children, list) or not children:
        raise RuleError("'conditions' must be a non-empty list.", _join(path, "conditions"))
    compiled = [
        _compile(c, f"{_join(path, 'conditions')}[{i}]", depth + 1, counter)
        for i, c in enumerate(children)
    ]
    want_all = node["type"] == "all"

    def evaluate(profile: Profile, now: float) -> Outcome:
        outcomes = [c(profile, now) for c in compiled]
        matched = all(o.matched for o in outcomes) if want_all else any(o.matched for o in outcomes)
        # When the answer may change if no event arrives. "all" that holds and "any" that does
        # not: as soon as any child flips. "any" that holds: when the last holding child stops.
        # "all" that does not: possibly when a failing child starts to hold (an early guess is
        # safe; the visitor is simply evaluated again then).
        deciding = [o for o in outcomes if o.matched == matched]
        if matched and not want_all:
            until = max(o.until for o in deciding)
        else:
            until = min(o.until for o in deciding)
        reasons = tuple(r for o in deciding for r in o.reasons)
        return Outcome(matched, until, reasons)

    return evaluate


def _compile_not(node: dict, path: str, depth: int, counter: list[int]) -> Evaluator:
    child = _compile(node.get("condition"), _join(path, "condition"), depth + 1, counter)

    def evaluate(profile: Profile, now: float) -> Outcome:
        o = child(profile, now)
        return Outcome(not o.matched, o.until, tuple(f"not ({r})" for r in o.reasons))

    return evaluate


def _compile_event_count(node: dict, path: str, depth: int, counter: list[int]) -> Evaluator:
    name = node.get("event")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RuleError("'event' must be an event name such as 'page_view'.", _join(path, "event"))
    minimum = node.get("min", 1)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or not 1 <= minimum <= 1_000_000:
        raise RuleError("'min' must be a whole number from 1 to 1,000,000.", _join(path, "min"))
    window, window_words = parse_window(node.get("window"), _join(path, "window"))
    label = name.replace("_", " ")

    def evaluate(profile: Profile, now: float) -> Outcome:
        count = profile.count_within(name, window, now)
        reason = f"{count} {label} event(s) in the last {window_words} (threshold {minimum})"
        if count >= minimum:
            return Outcome(True, profile.count_valid_until(name, window, minimum, now), (reason,))
        return Outcome(False, NEVER, (reason,))  # only a new event can make it hold

    return evaluate


_COMPILERS: dict[str, Callable[[dict, str, int, list[int]], Evaluator]] = {
    "all": _compile_group,
    "any": _compile_group,
    "not": _compile_not,
    "event_count": _compile_event_count,
}
