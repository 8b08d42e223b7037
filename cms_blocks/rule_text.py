"""A segment rule in plain words, for editors (pure: no Django).

``describe(tree)`` turns the JSON condition tree of :mod:`segments.rules` into one sentence,
nested like the tree: "Visitors matching all of: at least 3 page views in the last 10 minutes;
not (at least 1 purchase event in the last 30 days)". The wording follows the rule
engine's own reasons ("page view", "in the last 10 minutes", "≥"). It never raises: a part it
cannot read is described as "an incomplete condition", so an editor sees the sentence change
while building a rule, before it is valid.
"""

import re
from typing import Any

_WINDOW_RE = re.compile(r"([0-9]{1,6})([smhd])\Z")
_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day"}
_OPS = {
    "eq": "is",
    "ne": "is not",
    "lt": "is less than",
    "lte": "is at most",
    "gt": "is more than",
    "gte": "is at least",
    "in": "is one of",
    "not_in": "is none of",
    "contains": "contains",
    "regex": "matches the pattern",
    "exists": "is known",
}
_CONTEXT_WORDS = {
    "device": "the device",
    "referrer": "the referring site",
    "utm_source": "the campaign source",
    "utm_medium": "the campaign medium",
    "utm_campaign": "the campaign",
    "language": "the language",
    "country": "the country",
    "path": "the page",
    "hour": "the hour of the day",
    "weekday": "the weekday (0 = Monday)",
}
INCOMPLETE = "an incomplete condition"
MAX_DEPTH = 16


def window_words(value: Any) -> str | None:
    """'10m' -> '10 minutes'; None when it is not a window."""
    if not isinstance(value, str) or not (m := _WINDOW_RE.match(value)):
        return None
    amount, unit = int(m.group(1)), m.group(2)
    return f"{amount} {_UNIT_WORDS[unit]}{'' if amount == 1 else 's'}"


def _event(name: Any) -> str:
    return name.replace("_", " ") if isinstance(name, str) and name else "?"


def _plural(count: Any, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value) or "?"
    if isinstance(value, str):
        return f"“{value}”"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return "?" if value is None else str(value)


def _comparison(subject: str, node: dict) -> str:
    op = node.get("op")
    if op not in _OPS:
        return f"{subject} compared with nothing yet"
    if op == "exists":
        return f"{subject} is known"
    return f"{subject} {_OPS[op]} {_value(node.get('value'))}"


def _event_count(node: dict) -> str:
    event = _event(node.get("event"))
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
        event = f"{event} ({str(dimension).replace('_', ' ')} {_value(value)})"
    window = window_words(node.get("window")) or "?"
    noun = f"{event} event" if event != "page view" else "page view"
    plural = noun if minimum == 1 and maximum in (None, 1) else f"{noun}s"
    return f"{amount} {plural} in the last {window}"


def _event_without(node: dict) -> str:
    event, without = _event(node.get("event")), _event(node.get("without"))
    window = window_words(node.get("window")) or "?"
    text = f"{event} in the last {window} and no {without} since"
    age = window_words(node.get("min_age"))
    if age:
        text += f", at least {age} ago"
    return text


def _feature(node: dict) -> str:
    name = node.get("feature")
    subject = _event(name) if isinstance(name, str) else "a feature"
    if node.get("param"):
        subject += f" ({node['param']})"
    return _comparison(subject, node)


def _visited(node: dict) -> str:
    if node.get("path") is not None:
        return f"a view of the page {_value(node.get('path'))}"
    if node.get("path_prefix") is not None:
        return f"a view of a page under {_value(node.get('path_prefix'))}"
    return INCOMPLETE


def _context(node: dict) -> str:
    attribute = node.get("attribute")
    subject = (
        _CONTEXT_WORDS.get(attribute, "a request attribute")
        if isinstance(attribute, str)
        else "a request attribute"
    )
    return _comparison(subject, node)


def _model(node: dict) -> str:
    model = _value(node.get("model"))
    if node.get("top_percent") is not None:
        return f"among the top {_value(node.get('top_percent'))}% scored by model {model}"
    return _comparison(f"the score of model {model}", node)


def _cluster(node: dict) -> str:
    return f"in cluster {_value(node.get('cluster'))} of model {_value(node.get('model'))}"


_LEAVES = {
    "event_count": _event_count,
    "event_without": _event_without,
    "feature": _feature,
    "visited": _visited,
    "context": _context,
    "model": _model,
    "cluster": _cluster,
}


def describe_node(node: Any, depth: int = 0) -> str:
    """One condition (and what it contains) in words."""
    if depth > MAX_DEPTH or not isinstance(node, dict):
        return INCOMPLETE
    kind = node.get("type")
    if kind in ("all", "any"):
        children = node.get("conditions")
        if not isinstance(children, list) or not children:
            return f"{'all' if kind == 'all' else 'any'} of: (no conditions yet)"
        parts = [describe_node(c, depth + 1) for c in children]
        if len(parts) == 1:
            return parts[0]
        return f"{'all' if kind == 'all' else 'any'} of: " + "; ".join(
            f"({p})" if (" of: " in p) else p for p in parts
        )
    if kind == "not":
        return f"not ({describe_node(node.get('condition'), depth + 1)})"
    leaf = _LEAVES.get(kind) if isinstance(kind, str) else None
    if leaf is None:
        return INCOMPLETE
    try:
        return leaf(node)
    except (TypeError, ValueError, AttributeError):
        return INCOMPLETE


def describe(tree: Any) -> str:
    """The whole rule as a sentence about visitors."""
    return f"Visitors matching {describe_node(tree)}."
