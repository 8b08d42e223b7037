"""The built-in condition types (pure: no Django). Importing this module registers them.

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
  a comparison on a feature of the catalog (:mod:`segments.profiles.catalog`); ``"param"`` for
  features that take one (``category_affinity``). Operators: eq, ne, lt, lte, gt, gte, in,
  not_in, contains, regex, exists.
- ``{"type": "visited", "path": "/guides/"}`` (or ``"path_prefix"``): among the pages the
  visitor viewed most recently.
- ``{"type": "page_visits", "path": "/pricing/", "min": 3}`` (or ``"path_prefix"``, optional
  ``"max"``): how many times the visitor viewed a page (among the 32 pages they viewed most
  recently).
- ``{"type": "context", "attribute": "device", "op": "eq", "value": "mobile"}``: the request's
  context: device, referrer, utm_source, utm_medium, utm_campaign, language, country, path,
  hour and weekday (0 = Monday) in the site's time zone. Segments whose rules use only context
  conditions are evaluated inside each request, with or without consent, storing nothing;
  elsewhere context conditions use the visitor's latest known context.
- ``{"type": "query", "param": "ref", "op": "eq", "value": "newsletter"}``: a query parameter
  of the request (any parameter; ``exists`` when it is there at all), a context condition too.

Model scores and clusters are in :mod:`segments_ml.conditions`.
"""

import math
import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from ..profiles.catalog import FEATURES, Feature
from ..profiles.features import DIMENSIONS, NAME_RE, Profile, counter_key
from .engine import (
    INCOMPLETE,
    NEVER,
    CompileOptions,
    Condition,
    Evaluator,
    Field,
    Outcome,
    RuleError,
    compile_comparison,
    describe_condition,
    join_path,
    operators_for,
    parse_window,
    reason_check,
    reason_value,
    register_condition,
    window_words,
)
from .text import describe_comparison, event_words, quoted

__all__ = [
    "CONTEXT_ATTRIBUTES",
    "AllCondition",
    "AnyCondition",
    "ContextCondition",
    "EventCountCondition",
    "EventWithoutCondition",
    "FeatureCondition",
    "NotCondition",
    "PageVisitsCondition",
    "QueryParameterCondition",
    "VisitedCondition",
]

# Suggestions the rule builder offers for an event name (any valid name is accepted).
COMMON_EVENTS = ("page_view", "click", "add_to_cart", "purchase", "signup", "impression", "search")
OPERATOR = Field("op", "operator", "comparison", required=True)
VALUE = Field("value", "value", "value")


class _GroupCondition(Condition):
    role = "group"
    context_only = True  # as context-only as its conditions
    fields = (Field("conditions", "conditions", "conditions", required=True),)
    want_all = True

    def compile(self, node: dict, path: str, options: CompileOptions) -> Evaluator:
        children = node.get("conditions")
        if not isinstance(children, list) or not children:
            raise RuleError("'conditions' must be a non-empty list.", join_path(path, "conditions"))
        compiled = [
            options.compile(c, f"{join_path(path, 'conditions')}[{i}]")
            for i, c in enumerate(children)
        ]
        want_all = self.want_all

        def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
            outcomes = [c(profile, now, context) for c in compiled]
            if want_all:
                matched = all(o.matched for o in outcomes)
            else:
                matched = any(o.matched for o in outcomes)
            # When the answer may change if no event arrives. "all" that holds and "any" that
            # does not: as soon as any child flips. "any" that holds: when the last holding
            # child stops. "all" that does not: possibly when a failing child starts to hold (an
            # early guess is safe; the visitor is simply evaluated again then).
            deciding = [o for o in outcomes if o.matched == matched]
            if matched and not want_all:
                until = max(o.until for o in deciding)
            else:
                until = min(o.until for o in deciding)
            return Outcome(matched, until, lambda: [r for o in deciding for r in o.reasons])

        return evaluate

    def describe(self, node: dict) -> str:
        children = node.get("conditions")
        if not isinstance(children, list) or not children:
            return f"{self.type} of: (no conditions yet)"
        parts = [describe_condition(c) for c in children]
        if len(parts) == 1:
            return parts[0]
        return f"{self.type} of: " + "; ".join(f"({p})" if " of: " in p else p for p in parts)

    def children(self, node: dict) -> list[tuple[str, Any]]:
        children = node.get("conditions")
        if not isinstance(children, list):
            return []
        return [(f"conditions[{i}]", c) for i, c in enumerate(children)]

    def new_node(self) -> dict:
        return {"type": self.type, "conditions": [EventCountCondition().new_node()]}


@register_condition
class AllCondition(_GroupCondition):
    """Every condition holds."""

    type = "all"
    label = "Group: all of"


@register_condition
class AnyCondition(_GroupCondition):
    """At least one condition holds."""

    type = "any"
    label = "Group: any of"
    want_all = False


@register_condition
class NotCondition(Condition):
    """The condition does not hold."""

    type = "not"
    label = "Exclude (NOT)"
    role = "negation"
    context_only = True  # as context-only as its condition
    fields = (Field("condition", "condition", "condition", required=True),)

    def compile(self, node: dict, path: str, options: CompileOptions) -> Evaluator:
        child = options.compile(node.get("condition"), join_path(path, "condition"))

        def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
            o = child(profile, now, context)
            if o.matched:  # the excluded condition holds, so "not" fails: say it was excluded
                return Outcome(False, o.until, lambda: [f"excluded: {r}" for r in o.reasons])
            return Outcome(True, o.until, lambda: [f"not ({r})" for r in o.reasons])

        return evaluate

    def describe(self, node: dict) -> str:
        return f"not ({describe_condition(node.get('condition'))})"

    def children(self, node: dict) -> list[tuple[str, Any]]:
        return [("condition", node["condition"])] if "condition" in node else []

    def new_node(self) -> dict:
        return {"type": self.type, "condition": EventCountCondition().new_node()}


def _event_name(node: dict, key: str, path: str) -> str:
    name = node.get(key)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RuleError(f"'{key}' must be an event name such as 'page_view'.", join_path(path, key))
    return name


def _event_field(name: str, label: str) -> Field:
    return Field(name, "event", label, required=True, suggestions=COMMON_EVENTS)


@register_condition
class EventCountCondition(Condition):
    """Between ``min`` and ``max`` events named ``event`` in the last ``window``."""

    type = "event_count"
    label = "Number of events"
    fields = (
        _event_field("event", "event"),
        Field("min", "integer", "at least", default=1),
        Field("max", "integer", "at most (optional)"),
        Field("window", "window", "in the last", required=True),
        Field("filter", "filter", "only where", choices=DIMENSIONS),
    )

    def compile(self, node: dict, path: str, options: CompileOptions) -> Evaluator:
        name = _event_name(node, "event", path)
        minimum = node.get("min", 1)
        if (
            isinstance(minimum, bool)
            or not isinstance(minimum, int)
            or not 1 <= minimum <= 1_000_000
        ):
            raise RuleError(
                "'min' must be a whole number from 1 to 1,000,000.", join_path(path, "min")
            )
        maximum = node.get("max")
        if maximum is not None and (
            isinstance(maximum, bool) or not isinstance(maximum, int) or maximum < minimum
        ):
            raise RuleError(
                "'max' must be a whole number no smaller than 'min'.", join_path(path, "max")
            )
        window, window_text = parse_window(node.get("window"), join_path(path, "window"))
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
                    f"'filter' must be one of {dims} with a text value.",
                    join_path(path, "filter"),
                )
            ((dimension, value),) = flt.items()
            key = counter_key(name, dimension, value[:64])
            label = f"{label} ({dimension} {value})"

        def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
            count = profile.count_within(key, window, now)

            counted = f"{count} {label} event(s) in the last {window_text}"

            def reason():
                bound = (
                    f"threshold {minimum}"
                    if maximum is None
                    else f"between {minimum} and {maximum}"
                )
                return (f"{counted} ({bound})",)

            if count >= minimum and (maximum is None or count <= maximum):
                until = profile.count_valid_until(key, window, minimum, now)
                return Outcome(True, until, reason)
            if maximum is not None and count > maximum:  # too many: fewer once some age out
                until = profile.count_valid_until(key, window, maximum + 1, now)
                return Outcome(
                    False,
                    until,
                    lambda: (
                        f"{counted}, more than the {maximum} allowed ({count - maximum} too many)",
                    ),
                )
            # only a new event can make it hold
            return Outcome(
                False,
                NEVER,
                lambda: (
                    f"{counted}, fewer than the {minimum} required ({minimum - count} short)",
                ),
            )

        return evaluate

    def describe(self, node: dict) -> str:
        event = event_words(node.get("event"))
        minimum, maximum = node.get("min", 1), node.get("max")
        if maximum is None:
            amount = f"at least {minimum}"
        elif maximum == minimum:
            amount = f"exactly {minimum}"
        else:
            amount = f"between {minimum} and {maximum}"
        flt = node.get("filter")
        if isinstance(flt, dict) and len(flt) == 1:
            ((dimension, value),) = flt.items()
            event = f"{event} ({str(dimension).replace('_', ' ')} {quoted(value)})"
        window = window_words(node.get("window")) or "?"
        noun = f"{event} event" if event != "page view" else "page view"
        plural = noun if minimum == 1 and maximum in (None, 1) else f"{noun}s"
        return f"{amount} {plural} in the last {window}"

    def new_node(self) -> dict:
        return {"type": self.type, "event": "page_view", "min": 3, "window": "10m"}


@register_condition
class EventWithoutCondition(Condition):
    """Did ``event`` in the last ``window`` and no ``without`` since (and at least ``min_age``
    ago): "added to cart, no purchase, 30 minutes"."""

    type = "event_without"
    label = "Event without a follow-up"
    fields = (
        _event_field("event", "did"),
        _event_field("without", "and no"),
        Field("window", "window", "in the last", required=True),
        Field("min_age", "window", "at least this long ago (optional)"),
    )

    def compile(self, node: dict, path: str, options: CompileOptions) -> Evaluator:
        name = _event_name(node, "event", path)
        without = _event_name(node, "without", path)
        window, window_text = parse_window(node.get("window"), join_path(path, "window"))
        min_age = 0.0
        if node.get("min_age") is not None:
            min_age, _ = parse_window(node["min_age"], join_path(path, "min_age"))
            if min_age >= window:
                raise RuleError(
                    "'min_age' must be shorter than 'window'.", join_path(path, "min_age")
                )
        label, other = name.replace("_", " "), without.replace("_", " ")

        def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
            last = profile.last_ts.get(name)
            if last is None or last <= now - window:
                return Outcome(False, NEVER, (f"no {label} in the last {window_text}",))
            if profile.last_ts.get(without, -math.inf) >= last:
                return Outcome(False, NEVER, (f"{other} after the latest {label}",))
            if now - last < min_age:
                return Outcome(
                    False,
                    last + min_age,
                    lambda: (
                        f"{label} too recent: {_minutes(now - last)} ago, at least "
                        f"{_minutes(min_age)} required ({_minutes(last + min_age - now)} short)",
                    ),
                )
            return Outcome(
                True, last + window, (f"{label} in the last {window_text} and no {other} since",)
            )

        return evaluate

    def describe(self, node: dict) -> str:
        event, without = event_words(node.get("event")), event_words(node.get("without"))
        window = window_words(node.get("window")) or "?"
        text = f"{event} in the last {window} and no {without} since"
        age = window_words(node.get("min_age"))
        if age:
            text += f", at least {age} ago"
        return text

    def new_node(self) -> dict:
        return {
            "type": self.type,
            "event": "add_to_cart",
            "without": "purchase",
            "window": "1d",
            "min_age": "30m",
        }


@register_condition
class FeatureCondition(Condition):
    """A comparison on a feature of the catalog (:mod:`segments.profiles.catalog`)."""

    type = "feature"
    label = "Feature"
    fields = (
        Field("feature", "feature", "feature", required=True, choices=tuple(FEATURES)),
        Field("param", "text", "parameter"),
        OPERATOR,
        VALUE,
    )

    def compile(self, node: dict, path: str, options: CompileOptions) -> Evaluator:
        name = node.get("feature")
        feature = FEATURES.get(name) if isinstance(name, str) else None
        if feature is None:
            known = ", ".join(sorted(FEATURES))
            raise RuleError(
                f"unknown feature {name!r}; expected one of {known}.", join_path(path, "feature")
            )
        param = node.get("param")
        if feature.param is None and param is not None:
            raise RuleError(f"{name} takes no 'param'.", join_path(path, "param"))
        if (
            feature.param is not None
            and param is not None
            and (not isinstance(param, str) or not param)
        ):
            raise RuleError(f"'param' must be a {feature.param} name.", join_path(path, "param"))
        if feature.param == "category" and param is None:
            raise RuleError("'param' must name the category.", join_path(path, "param"))
        test, op, target = compile_comparison(node, path, feature.kind)
        subject = f"{name.replace('_', ' ')}{f' ({param})' if param else ''}"

        def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
            value = feature.value(profile, now, param)
            matched = test(value)
            return Outcome(
                matched,
                _feature_until(feature, profile, now, op, target, matched),
                lambda: (reason_check(subject, value, op, target, matched),),
            )

        return evaluate

    def describe(self, node: dict) -> str:
        name = node.get("feature")
        subject = event_words(name) if isinstance(name, str) else "a feature"
        if node.get("param"):
            subject += f" ({node['param']})"
        return describe_comparison(subject, node)

    def new_node(self) -> dict:
        first = next(iter(FEATURES.values()))
        number = first.kind == "number"
        return {
            "type": self.type,
            "feature": first.name,
            "op": "gte" if number else "eq",
            "value": 1 if number else "",
        }


def _count_bounds(node: dict, path: str, default_min: int = 1) -> tuple[int, int | None]:
    """``min`` (1 to 1,000,000) and the optional ``max`` (no smaller) of a counting node."""
    minimum = node.get("min", default_min)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or not 1 <= minimum <= 1_000_000:
        raise RuleError("'min' must be a whole number from 1 to 1,000,000.", join_path(path, "min"))
    maximum = node.get("max")
    if maximum is not None and (
        isinstance(maximum, bool) or not isinstance(maximum, int) or maximum < minimum
    ):
        raise RuleError(
            "'max' must be a whole number no smaller than 'min'.", join_path(path, "max")
        )
    return minimum, maximum


def _amount_words(minimum, maximum) -> str:
    if maximum is None:
        return f"at least {minimum}"
    if maximum == minimum:
        return f"exactly {minimum}"
    return f"between {minimum} and {maximum}"


def _minutes(seconds: float) -> str:
    minutes = max(seconds, 0.0) / 60.0
    if minutes >= 120:
        return f"{reason_value(minutes / 60.0)} hours"
    return f"{reason_value(minutes)} minutes"


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


@register_condition
class VisitedCondition(Condition):
    """Among the pages the visitor viewed most recently: ``path`` or ``path_prefix``."""

    type = "visited"
    label = "Visited page"
    fields = (
        Field("path", "path", "exactly the path"),
        Field("path_prefix", "path", "under the path"),
    )

    def compile(self, node: dict, path: str, options: CompileOptions) -> Evaluator:
        exact, prefix = node.get("path"), node.get("path_prefix")
        if (exact is None) == (prefix is None):
            raise RuleError("give either 'path' or 'path_prefix'.", path)
        target = exact if exact is not None else prefix
        if not isinstance(target, str) or not target.startswith("/") or len(target) > 200:
            raise RuleError(
                "a path starts with '/' (at most 200 characters).",
                join_path(path, "path" if exact is not None else "path_prefix"),
            )

        def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
            if exact is not None:
                matched = exact in profile.paths
            else:
                matched = any(p.startswith(prefix) for p in profile.paths)
            words = f"visited {target}" if exact is not None else f"visited a page under {target}"
            return Outcome(matched, NEVER, (words if matched else f"not {words}",))

        return evaluate

    def describe(self, node: dict) -> str:
        if node.get("path") is not None:
            return f"a view of the page {quoted(node.get('path'))}"
        if node.get("path_prefix") is not None:
            return f"a view of a page under {quoted(node.get('path_prefix'))}"
        return INCOMPLETE

    def new_node(self) -> dict:
        return {"type": self.type, "path_prefix": "/"}


def _page_target(node: dict, path: str) -> tuple[str | None, str | None]:
    exact, prefix = node.get("path"), node.get("path_prefix")
    if (exact is None) == (prefix is None):
        raise RuleError("give either 'path' or 'path_prefix'.", path)
    target = exact if exact is not None else prefix
    if not isinstance(target, str) or not target.startswith("/") or len(target) > 200:
        raise RuleError(
            "a path starts with '/' (at most 200 characters).",
            join_path(path, "path" if exact is not None else "path_prefix"),
        )
    return exact, prefix


@register_condition
class PageVisitsCondition(Condition):
    """How many times the visitor viewed a page (``path``) or the pages under a path
    (``path_prefix``): at least ``min``, at most ``max``. Views are counted per page for the
    32 pages each visitor viewed most recently (a page out of those reads as 0 views), from
    the page views their profile summarises."""

    type = "page_visits"
    label = "Page views of a page"
    fields = (
        Field("path", "path", "page (exact path)"),
        Field("path_prefix", "path", "pages under"),
        Field("min", "integer", "at least (times)", default=1),
        Field("max", "integer", "at most (optional)"),
    )

    def compile(self, node: dict, path: str, options: CompileOptions) -> Evaluator:
        exact, prefix = _page_target(node, path)
        minimum, maximum = _count_bounds(node, path)
        page = f"the page {exact}" if exact is not None else f"pages under {prefix}"

        def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
            count = profile.visit_count(exact, prefix)
            seen = f"{count} view(s) of {page}"
            if count < minimum:
                return Outcome(
                    False, NEVER, (f"{seen}, fewer than {minimum} ({minimum - count} short)",)
                )
            if maximum is not None and count > maximum:
                return Outcome(
                    False, NEVER, (f"{seen}, more than {maximum} ({count - maximum} too many)",)
                )
            return Outcome(True, NEVER, (f"{seen} ({_amount_words(minimum, maximum)})",))

        return evaluate

    def describe(self, node: dict) -> str:
        minimum, maximum = node.get("min", 1), node.get("max")
        if node.get("path") is not None:
            page = f"the page {quoted(node.get('path'))}"
        elif node.get("path_prefix") is not None:
            page = f"pages under {quoted(node.get('path_prefix'))}"
        else:
            return INCOMPLETE
        times = "time" if minimum == 1 and maximum in (None, 1) else "times"
        return f"viewed {page} {_amount_words(minimum, maximum)} {times}"

    def new_node(self) -> dict:
        return {"type": self.type, "path": "/", "min": 3}


# attribute -> (kind of value, how a description names it)
CONTEXT_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "device": ("string", "the device"),
    "referrer": ("string", "the referring site"),
    "utm_source": ("string", "the campaign source"),
    "utm_medium": ("string", "the campaign medium"),
    "utm_campaign": ("string", "the campaign"),
    "language": ("string", "the language"),
    "country": ("string", "the country"),
    "path": ("string", "the page"),
    "hour": ("number", "the hour of the day"),
    "weekday": ("number", "the weekday (0 = Monday)"),
}


@register_condition
class ContextCondition(Condition):
    """The request's context (or, in the workers, the visitor's latest known context); hour
    and weekday (0 = Monday) in the site's time zone."""

    type = "context"
    label = "Request context"
    context_only = True
    fields = (
        Field(
            "attribute",
            "choice",
            "attribute",
            required=True,
            choices=tuple(
                {"value": name, "label": name, "kind": kind, "words": words}
                for name, (kind, words) in CONTEXT_ATTRIBUTES.items()
            ),
        ),
        OPERATOR,
        VALUE,
    )

    def compile(self, node: dict, path: str, options: CompileOptions) -> Evaluator:
        attribute = node.get("attribute")
        if not isinstance(attribute, str) or attribute not in CONTEXT_ATTRIBUTES:
            known = ", ".join(sorted(CONTEXT_ATTRIBUTES))
            raise RuleError(
                f"unknown context attribute {attribute!r}; expected one of {known}.",
                join_path(path, "attribute"),
            )
        test, op, target = compile_comparison(node, path, CONTEXT_ATTRIBUTES[attribute][0])
        tz = options.tz
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
            return Outcome(
                matched, until, lambda: (reason_check(attribute, value, op, target, matched),)
            )

        return evaluate

    def describe(self, node: dict) -> str:
        attribute = node.get("attribute")
        known = CONTEXT_ATTRIBUTES.get(attribute) if isinstance(attribute, str) else None
        subject = known[1] if known else "a request attribute"
        return describe_comparison(subject, node)

    def new_node(self) -> dict:
        return {"type": self.type, "attribute": "device", "op": "eq", "value": "mobile"}


# What a query parameter's name may be: letters, digits and . _ - [ ] (as in "utm_source",
# "filter[color]", "ref"), at most 64 characters.
_PARAM_RE = re.compile(r"[A-Za-z0-9._\[\]-]{1,64}\Z")


@lru_cache(maxsize=1024)
def _recorded_query(query: str) -> dict[str, str]:
    """A page view's recorded parameters (a query string) as a mapping, last value winning
    as for ``request.GET.get``."""
    return dict(parse_qsl(query, keep_blank_values=True))


def _query_value(source: Mapping, param: str) -> str | None:
    query = source.get("query")
    if isinstance(query, str):
        return _recorded_query(query).get(param)
    if query is None:
        return None
    try:
        value = query.get(param)
    except Exception:  # not a mapping (a hand-made context): unknown
        return None
    return value if isinstance(value, str) else None


@register_condition
class QueryParameterCondition(Condition):
    """A query parameter of the request: ``?ref=newsletter`` holds for ``{"param": "ref", "op":
    "eq", "value": "newsletter"}`` (``exists``: the parameter is there, whatever its value). A
    context condition: decided inside the request for every visitor when the rule has only
    such conditions (storing nothing); elsewhere it reads the parameters recorded with the
    visitor's latest page view that had any of those rules name."""

    type = "query"
    label = "Query parameter"
    context_only = True
    fields = (
        Field(
            "param",
            "text",
            "parameter",
            required=True,
            help="The name in the address after ? or &, such as ref in ?ref=newsletter.",
        ),
        Field(
            "op", "operator", "comparison", required=True, choices=tuple(operators_for("string"))
        ),
        VALUE,
    )

    def compile(self, node: dict, path: str, options: CompileOptions) -> Evaluator:
        param = node.get("param")
        if not isinstance(param, str) or not _PARAM_RE.match(param):
            raise RuleError(
                "'param' must be a parameter name: letters, digits and . _ - [ ] (at most 64).",
                join_path(path, "param"),
            )
        test, op, target = compile_comparison(node, path, "string")
        subject = f"the query parameter {param}"

        def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
            source = context if context is not None else profile.context
            value = _query_value(source, param)
            matched = test(value)
            return Outcome(
                matched, NEVER, lambda: (reason_check(subject, value, op, target, matched),)
            )

        return evaluate

    def describe(self, node: dict) -> str:
        param = node.get("param")
        name = quoted(param) if isinstance(param, str) and param else "?"
        return describe_comparison(f"the query parameter {name}", node)

    def references(self, node: dict) -> list[dict]:
        param = node.get("param")
        return [{"kind": "query_param", "param": param}] if isinstance(param, str) else []

    def new_node(self) -> dict:
        return {"type": self.type, "param": "ref", "op": "eq", "value": ""}
