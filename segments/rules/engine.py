"""Rule engine: a JSON condition tree compiled once per segment version (pure: no Django).

A rule is a tree of nodes, each a JSON object with a ``type``:

- ``{"type": "all", "conditions": [...]}``, ``{"type": "any", "conditions": [...]}``
- ``{"type": "not", "condition": {...}}``
- ``{"type": "event_count", "event": "page_view", "min": 3, "window": "10m"}``:
  at least ``min`` (and optionally at most ``max``) events named ``event`` in the last
  ``window`` (``s``, ``m``, ``h`` or ``d``), optionally only those whose ``category`` or
  ``page_type`` is a given value (``"filter": {"category": "kitchen"}``).
- ``{"type": "event_without", "event": "add_to_cart", "without": "purchase", "window": "1d"}``:
  did ``event`` within ``window`` and no ``without`` since; ``min_age`` (e.g. ``"30m"``)
  requires the event to be at least that old (a cart abandoned for 30 minutes).
- ``{"type": "feature", "feature": "days_since_last_seen", "op": "lt", "value": 30}``:
  a comparison on a feature of the catalog (:mod:`segments.catalog`); ``"param"`` for
  features that take one (``category_affinity``). Operators: eq, ne, lt, lte, gt, gte, in,
  not_in, contains, regex, exists.
- ``{"type": "model", "model": "buys-again", "op": "gte", "value": 0.6}``: a propensity
  model's score (0 to 1, ops as for features), or ``"top_percent": 10`` for visitors ranked in
  the model's top 10%; ``{"type": "cluster", "model": "rfm", "cluster": "champions"}``: the
  visitor's cluster in a clustering model. The workers store the active models' outputs in the
  profile; whether the model exists is checked where the segment is saved.
- ``{"type": "visited", "path": "/guides/"}`` (or ``"path_prefix"``): among the pages the
  visitor viewed most recently.
- ``{"type": "context", "attribute": "device", "op": "eq", "value": "mobile"}``: the request's
  context: device, referrer, utm_source, utm_medium, utm_campaign, language, country, path,
  hour and weekday (0 = Monday) in the site's time zone. Segments whose rules use only context
  conditions are evaluated inside each request, with or without consent, storing nothing;
  elsewhere context conditions use the visitor's latest known context.

:func:`compile_rule` validates the whole tree up front and raises :class:`RuleError` with a
message an editor can act on; a compiled rule never raises at evaluation time. Evaluation
returns whether the visitor matches, *until when* that answer holds if nothing else happens (so
membership can expire on time without traffic), and the reasons in plain words.
"""

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from ..catalog import FEATURES, Feature
from ..events import NAME_RE
from ..features import DIMENSIONS, MAX_WINDOW, Profile, counter_key

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
        self.message = message  # without the path
        super().__init__(f"{path}: {message}" if path else message)


class Outcome:
    """Whether a visitor matches, until when that holds if no event arrives (NEVER:
    indefinitely), and why. The reasons are worded only when someone reads them: workers
    evaluate thousands of rules per second and need the words only when membership changes."""

    __slots__ = ("_why", "matched", "until")

    def __init__(self, matched: bool, until: float, why=()):
        self.matched = matched
        self.until = until
        self._why = why

    @property
    def reasons(self) -> tuple[str, ...]:
        if callable(self._why):
            self._why = tuple(self._why())
        return self._why

    def __eq__(self, other) -> bool:
        if not isinstance(other, Outcome):
            return NotImplemented
        return (self.matched, self.until, self.reasons) == (
            other.matched,
            other.until,
            other.reasons,
        )

    __hash__ = None

    def __repr__(self) -> str:
        return f"Outcome(matched={self.matched}, until={self.until}, reasons={self.reasons})"


Evaluator = Callable[..., Outcome]  # (profile, now, context=None) -> Outcome


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


@dataclass(slots=True)
class _Options:
    tz: tzinfo
    nodes: int = 0
    context_only: bool = True


def compile_rule(tree: Any, *, tz: tzinfo = UTC) -> Evaluator:
    """Validate and compile a rule tree into a fast evaluator."""
    return _compile(tree, "", 0, _Options(tz))


def is_context_only(tree: Any) -> bool:
    """Whether the (valid) rule uses only request-context conditions."""
    options = _Options(UTC)
    _compile(tree, "", 0, options)
    return options.context_only


def validate_rule(tree: Any) -> list[tuple[str, str]]:
    """What is wrong with a rule, as ``(path, message)`` pairs (empty when it is valid).

    ``path`` locates the offending condition or field (``conditions[1].window``; ``""`` for the
    whole rule) and ``message`` says how to fix it, e.g. "a window is a number followed by s, m,
    h or d, such as '10m'."
    """
    try:
        compile_rule(tree)
    except RuleError as exc:
        return [(exc.path, exc.message)]
    return []


def _compile(node: Any, path: str, depth: int, counter: _Options) -> Evaluator:
    counter.nodes += 1
    if counter.nodes > MAX_NODES:
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


def _compile_group(node: dict, path: str, depth: int, counter: _Options) -> Evaluator:
    children = node.get("conditions")
    if not isinstance(children, list) or not children:
        raise RuleError("'conditions' must be a non-empty list.", _join(path, "conditions"))
    compiled = [
        _compile(c, f"{_join(path, 'conditions')}[{i}]", depth + 1, counter)
        for i, c in enumerate(children)
    ]
    want_all = node["type"] == "all"

    def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
        outcomes = [c(profile, now, context) for c in compiled]
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
        return Outcome(matched, until, lambda: [r for o in deciding for r in o.reasons])

    return evaluate


def _compile_not(node: dict, path: str, depth: int, counter: _Options) -> Evaluator:
    child = _compile(node.get("condition"), _join(path, "condition"), depth + 1, counter)

    def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
        o = child(profile, now, context)
        return Outcome(not o.matched, o.until, lambda: [f"not ({r})" for r in o.reasons])

    return evaluate


def _event_name(node: dict, key: str, path: str) -> str:
    name = node.get(key)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RuleError(f"'{key}' must be an event name such as 'page_view'.", _join(path, key))
    return name


def _compile_event_count(node: dict, path: str, depth: int, counter: _Options) -> Evaluator:
    counter.context_only = False
    name = _event_name(node, "event", path)
    minimum = node.get("min", 1)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or not 1 <= minimum <= 1_000_000:
        raise RuleError("'min' must be a whole number from 1 to 1,000,000.", _join(path, "min"))
    maximum = node.get("max")
    if maximum is not None and (
        isinstance(maximum, bool) or not isinstance(maximum, int) or maximum < minimum
    ):
        raise RuleError("'max' must be a whole number no smaller than 'min'.", _join(path, "max"))
    window, window_words = parse_window(node.get("window"), _join(path, "window"))
    key, label = name, name.replace("_", " ")
    flt = node.get("filter")
    if flt is not None:
        if (
            not isinstance(flt, dict)
            or len(flt) != 1
            or next(iter(flt)) not in DIMENSIONS
            or not isinstance(next(iter(flt.values())), str)
            or not next(iter(flt.values()))
        ):
            dims = " or ".join(DIMENSIONS)
            raise RuleError(
                f"'filter' must be one of {dims} with a text value.", _join(path, "filter")
            )
        ((dimension, value),) = flt.items()
        key = counter_key(name, dimension, value[:64])
        label = f"{label} ({dimension} {value})"

    def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
        count = profile.count_within(key, window, now)

        def reason():
            bound = (
                f"threshold {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            )
            return (f"{count} {label} event(s) in the last {window_words} ({bound})",)

        if count >= minimum and (maximum is None or count <= maximum):
            until = profile.count_valid_until(key, window, minimum, now)
            return Outcome(True, until, reason)
        if maximum is not None and count > maximum:  # too many: fewer once some age out
            until = profile.count_valid_until(key, window, maximum + 1, now)
            return Outcome(False, until, reason)
        return Outcome(False, NEVER, reason)  # only a new event can make it hold

    return evaluate


def _compile_event_without(node: dict, path: str, depth: int, counter: _Options) -> Evaluator:
    counter.context_only = False
    name = _event_name(node, "event", path)
    without = _event_name(node, "without", path)
    window, window_words = parse_window(node.get("window"), _join(path, "window"))
    min_age = 0.0
    if node.get("min_age") is not None:
        min_age, _ = parse_window(node["min_age"], _join(path, "min_age"))
        if min_age >= window:
            raise RuleError("'min_age' must be shorter than 'window'.", _join(path, "min_age"))
    label, other = name.replace("_", " "), without.replace("_", " ")

    def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
        last = profile.last_ts.get(name)
        if last is None or last <= now - window:
            return Outcome(False, NEVER, (f"no {label} in the last {window_words}",))
        if profile.last_ts.get(without, -math.inf) >= last:
            return Outcome(False, NEVER, (f"{other} after the latest {label}",))
        if now - last < min_age:
            return Outcome(False, last + min_age, (f"{label} too recent",))
        return Outcome(
            True, last + window, (f"{label} in the last {window_words} and no {other} since",)
        )

    return evaluate


_NUMBER_OPS = {"eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "exists"}
_STRING_OPS = {"eq", "ne", "in", "not_in", "contains", "regex", "exists"}
_COMPARE = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


def _comparison(node: dict, path: str, kind: str) -> tuple[Callable[[Any], bool], str, Any]:
    """A predicate over a value (None: unknown) from ``op`` and ``value``, validated."""
    op = node.get("op")
    ops = _NUMBER_OPS if kind == "number" else _STRING_OPS
    if op not in ops:
        raise RuleError(f"'op' must be one of {', '.join(sorted(ops))}.", _join(path, "op"))
    if op == "exists":
        return (lambda v: v is not None), op, None
    target = node.get("value")
    vpath = _join(path, "value")
    if op in ("in", "not_in"):
        if not isinstance(target, list) or not target or len(target) > 100:
            raise RuleError("'value' must be a non-empty list (at most 100 items).", vpath)
        for item in target:
            _check_scalar(item, kind, vpath)
        members = frozenset(target)
        if op == "in":
            return (lambda v: v is not None and v in members), op, target
        return (lambda v: v is None or v not in members), op, target
    _check_scalar(target, kind, vpath)
    if op == "regex":
        if len(target) > 200:
            raise RuleError("a pattern may be at most 200 characters.", vpath)
        try:
            pattern = re.compile(target)
        except re.error as exc:
            raise RuleError(f"invalid regular expression: {exc}.", vpath) from exc
        return (lambda v: isinstance(v, str) and pattern.search(v) is not None), op, target
    if op == "contains":
        return (lambda v: isinstance(v, str) and target in v), op, target
    compare = _COMPARE[op]
    if op == "ne":
        return (lambda v: v is None or compare(v, target)), op, target
    return (lambda v: v is not None and compare(v, target)), op, target


def _check_scalar(value: Any, kind: str, path: str) -> None:
    if kind == "number":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise RuleError("'value' must be a number.", path)
    elif not isinstance(value, str) or len(value) > 500:
        raise RuleError("'value' must be text (at most 500 characters).", path)


def _words(op: str, target: Any) -> str:
    names = {"eq": "=", "ne": "≠", "lt": "<", "lte": "≤", "gt": ">", "gte": "≥"}
    if op == "exists":
        return "is known"
    if op in names:
        return f"{names[op]} {target}"
    return f"{op.replace('_', ' ')} {target}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return "unknown" if value is None else str(value)


def _compile_feature(node: dict, path: str, depth: int, counter: _Options) -> Evaluator:
    counter.context_only = False
    name = node.get("feature")
    feature = FEATURES.get(name) if isinstance(name, str) else None
    if feature is None:
        known = ", ".join(sorted(FEATURES))
        raise RuleError(
            f"unknown feature {name!r}; expected one of {known}.", _join(path, "feature")
        )
    param = node.get("param")
    if feature.param is None and param is not None:
        raise RuleError(f"{name} takes no 'param'.", _join(path, "param"))
    if (
        feature.param is not None
        and param is not None
        and (not isinstance(param, str) or not param)
    ):
        raise RuleError(f"'param' must be a {feature.param} name.", _join(path, "param"))
    if feature.param == "category" and param is None:
        raise RuleError("'param' must name the category.", _join(path, "param"))
    test, op, target = _comparison(node, path, feature.kind)
    describe = f"{name.replace('_', ' ')}{f' ({param})' if param else ''}"

    def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
        value = feature.value(profile, now, param)
        matched = test(value)
        return Outcome(
            matched,
            _feature_until(feature, profile, now, op, target, matched),
            lambda: (f"{describe} is {_fmt(value)} ({_words(op, target)})",),
        )

    return evaluate


def _feature_until(
    feature: Feature, profile: Profile, now: float, op: str, target, matched: bool
) -> float:
    """When a comparison on a feature that moves with time alone flips."""
    if feature.trend is None or feature.crossing is None:
        return NEVER
    if op in ("lt", "lte", "gt", "gte"):
        rising = feature.trend == "up"
        below = op in ("lt", "lte")
        # Rising values leave "below" and enter "above"; decaying ones the other way round.
        flips = (matched and below == rising) or (not matched and below != rising)
        if not flips:
            return NEVER
        at = feature.crossing(profile, float(target))
        return NEVER if at is None else max(at, now)
    return now + 3600.0  # equality on a moving value: look again in an hour


_CONTEXT_ATTRIBUTES = {
    "device": "string",
    "referrer": "string",
    "utm_source": "string",
    "utm_medium": "string",
    "utm_campaign": "string",
    "language": "string",
    "country": "string",
    "path": "string",
    "hour": "number",
    "weekday": "number",
}


def _compile_context(node: dict, path: str, depth: int, counter: _Options) -> Evaluator:
    attribute = node.get("attribute")
    if attribute not in _CONTEXT_ATTRIBUTES:
        known = ", ".join(sorted(_CONTEXT_ATTRIBUTES))
        raise RuleError(
            f"unknown context attribute {attribute!r}; expected one of {known}.",
            _join(path, "attribute"),
        )
    test, op, target = _comparison(node, path, _CONTEXT_ATTRIBUTES[attribute])
    tz = counter.tz
    timed = attribute in ("hour", "weekday")

    def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
        if timed:
            local = datetime.fromtimestamp(now, tz)
            value = local.hour if attribute == "hour" else local.weekday()
            until = (now // 3600 + 1) * 3600  # look again at the next hour
        else:
            source = context if context is not None else profile.context
            value = source.get("path" if attribute == "path" else attribute)
            if value is None and context is None and attribute == "path" and profile.paths:
                value = profile.paths[-1]
            until = NEVER
        matched = test(value)
        return Outcome(matched, until, (f"{attribute} is {_fmt(value)} ({_words(op, target)})",))

    return evaluate


def _compile_visited(node: dict, path: str, depth: int, counter: _Options) -> Evaluator:
    counter.context_only = False
    exact, prefix = node.get("path"), node.get("path_prefix")
    if (exact is None) == (prefix is None):
        raise RuleError("give either 'path' or 'path_prefix'.", path)
    target = exact if exact is not None else prefix
    if not isinstance(target, str) or not target.startswith("/") or len(target) > 200:
        raise RuleError(
            "a path starts with '/' (at most 200 characters).",
            _join(path, "path" if exact is not None else "path_prefix"),
        )

    def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
        if exact is not None:
            matched = exact in profile.paths
        else:
            matched = any(p.startswith(prefix) for p in profile.paths)
        words = f"visited {target}" if exact is not None else f"visited a page under {target}"
        return Outcome(matched, NEVER, (words if matched else f"not {words}",))

    return evaluate


_MODEL_SLUG_RE = re.compile(r"[a-z0-9_-]{1,40}\Z")
_CLUSTER_KEY_RE = re.compile(r"[a-z0-9_-]{1,64}\Z")


def _model_slug(node: dict, path: str) -> str:
    slug = node.get("model")
    if not isinstance(slug, str) or not _MODEL_SLUG_RE.match(slug):
        raise RuleError(
            "'model' must be a model's slug (lower-case letters, digits, - or _).",
            _join(path, "model"),
        )
    return slug


def _compile_model(node: dict, path: str, depth: int, counter: _Options) -> Evaluator:
    """A propensity model's score (0-1), or its rank: ``top_percent`` 10 holds for visitors
    scored in the top 10% of the population the model was trained on."""
    counter.context_only = False
    slug = _model_slug(node, path)
    label = slug.replace("_", " ").replace("-", " ")
    top = node.get("top_percent")
    if top is not None:
        if "op" in node or "value" in node:
            raise RuleError("give either 'top_percent' or 'op' and 'value', not both.", path)
        if isinstance(top, bool) or not isinstance(top, int | float) or not 0 < top < 100:
            raise RuleError(
                "'top_percent' must be a number above 0 and below 100, such as 10.",
                _join(path, "top_percent"),
            )
        floor = 100 - top

        def evaluate_top(profile: Profile, now: float, context: dict | None = None) -> Outcome:
            entry = profile.scores.get(slug)
            if not isinstance(entry, list) or len(entry) != 2:
                return Outcome(False, NEVER, (f"not scored by {label} yet",))
            rank = entry[1]
            matched = rank >= floor
            return Outcome(
                matched,
                NEVER,
                lambda: (
                    f"{label} score {_fmt(entry[0])} ranks in the top "
                    f"{_fmt(max(100 - rank, 1))}% (top {_fmt(top)}% required)",
                ),
            )

        return evaluate_top

    test, op, target = _comparison(node, path, "number")
    if op in ("lt", "lte", "gt", "gte", "eq", "ne") and not 0 <= target <= 1:
        raise RuleError(
            "a score is a probability between 0 and 1, such as 0.6.", _join(path, "value")
        )

    def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
        entry = profile.scores.get(slug)
        score = entry[0] if isinstance(entry, list) and entry else None
        matched = test(score)
        if score is None:
            return Outcome(matched, NEVER, (f"not scored by {label} yet",))
        return Outcome(
            matched, NEVER, lambda: (f"{label} score is {_fmt(score)} ({_words(op, target)})",)
        )

    return evaluate


def _compile_cluster(node: dict, path: str, depth: int, counter: _Options) -> Evaluator:
    """Membership of a cluster of a clustering model, by its stable key."""
    counter.context_only = False
    slug = _model_slug(node, path)
    key = node.get("cluster")
    if not isinstance(key, str) or not _CLUSTER_KEY_RE.match(key):
        raise RuleError(
            "'cluster' must be a cluster's key, such as 'champions'.", _join(path, "cluster")
        )
    label = slug.replace("_", " ").replace("-", " ")

    def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
        actual = profile.scores.get(slug)
        if not isinstance(actual, str):
            return Outcome(False, NEVER, (f"not placed in a {label} cluster yet",))
        if actual == key:
            return Outcome(True, NEVER, (f"in the {key} cluster of {label}",))
        return Outcome(False, NEVER, (f"in the {actual} cluster of {label}, not {key}",))

    return evaluate


def model_references(tree: Any) -> list[dict]:
    """The model and cluster conditions of a (valid) rule: ``{"model", "cluster", "path"}``
    each (``cluster`` None for score conditions), so the caller can check they exist."""
    found: list[dict] = []

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind in ("model", "cluster"):
            found.append(
                {
                    "model": node.get("model"),
                    "cluster": node.get("cluster") if kind == "cluster" else None,
                    "path": path,
                }
            )
        for i, child in enumerate(node.get("conditions") or []):
            walk(child, f"{_join(path, 'conditions')}[{i}]")
        if "condition" in node:
            walk(node["condition"], _join(path, "condition"))

    walk(tree, "")
    return found


_COMPILERS: dict[str, Callable[[dict, str, int, _Options], Evaluator]] = {
    "all": _compile_group,
    "any": _compile_group,
    "not": _compile_not,
    "event_count": _compile_event_count,
    "event_without": _compile_event_without,
    "feature": _compile_feature,
    "visited": _compile_visited,
    "context": _compile_context,
    "model": _compile_model,
    "cluster": _compile_cluster,
}
