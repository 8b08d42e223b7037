"""How rule values read in an editor's description of a rule (pure: no Django).

The wording follows the rule engine's own reasons ("page view", "in the last 10 minutes"), and
values are quoted so an editor sees exactly what the rule compares with: the device is one of
“mobile”, “tablet”.
"""

from typing import Any

from .engine import OPERATORS

__all__ = ["describe_comparison", "event_words", "quoted"]


def event_words(name: Any) -> str:
    """An event name as words: "add_to_cart" -> "add to cart" ("?" when missing)."""
    return name.replace("_", " ") if isinstance(name, str) and name else "?"


def quoted(value: Any) -> str:
    """A value as a description shows it: text in quotes, lists joined, "?" when missing."""
    if isinstance(value, list):
        return ", ".join(quoted(v) for v in value) or "?"
    if isinstance(value, str):
        return f"“{value}”"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return "?" if value is None else str(value)


def describe_comparison(subject: str, node: dict) -> str:
    """``subject`` compared by the node's ``op`` and ``value``: "the device is “mobile”"."""
    op = OPERATORS.get(node.get("op"))
    if op is None:
        return f"{subject} compared with nothing yet"
    if op.name == "exists":
        return f"{subject} is known"
    return f"{subject} {op.words} {quoted(node.get('value'))}"
