"""Rule engine: a JSON condition tree compiled once per segment version (pure: no Django).

A rule is a tree of nodes, each a JSON object with a ``type``. Every type is one
:class:`Condition` class, registered with :func:`register_condition`; that class alone says
which keys the node takes, how it validates and compiles, how it reads in plain words, what
the rule builder offers for it and what it refers to. The built-in types are in
`segments.rules.core_conditions` (groups, ``not``, events, features, paths, request context)
and `segments_ml.conditions` (model scores and clusters); ``docs/rules.md`` lists
them and shows how a site adds its own.

:func:`compile_rule` validates the whole tree up front and raises :class:`RuleError` (and
nothing else, even when a condition type fails in another way) with a message an editor can act
on; a key a type does not take is an error (``"minn": 3`` is a typo,
not a default). A compiled rule never raises at evaluation time. Evaluation returns whether the
visitor matches, *until when* that answer holds if nothing else happens (so membership can
expire on time without traffic), and the reasons in plain words.

This module also holds the value grammar the conditions share: windows (``"10m"``) and the
comparison operators, each defined once with its words for the builder, descriptions and
reasons.
"""

import math
import operator
import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any, ClassVar, TypeVar

from ..profiles.features import MAX_WINDOW

NEVER = math.inf
MAX_DEPTH = 8
MAX_NODES = 64
INCOMPLETE = "an incomplete condition"
# Descriptions are also drawn for rules being built (not validated, possibly deeper than
# MAX_DEPTH); past this depth a part reads as incomplete instead of recursing further.
DESCRIBE_DEPTH = 16


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
            try:
                self._why = tuple(self._why())
            except Exception:  # a condition's wording must not fail the batch that records it
                self._why = ("(the reasons could not be worded)",)
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


def join_path(path: str, part: str) -> str:
    """``join_path("conditions[1]", "window")`` -> ``"conditions[1].window"``."""
    return f"{path}.{part}" if path else part


# -- windows ------------------------------------------------------------------------------------
_WINDOW_RE = re.compile(r"([0-9]{1,6})([smhd])\Z")
# unit -> (seconds, word)
UNITS = {"s": (1, "second"), "m": (60, "minute"), "h": (3600, "hour"), "d": (86400, "day")}


def _window_parts(value: Any) -> tuple[int, str] | None:
    if not isinstance(value, str) or not (m := _WINDOW_RE.match(value)):
        return None
    return int(m.group(1)), m.group(2)


def _amount_words(amount: int, unit: str) -> str:
    return f"{amount} {UNITS[unit][1]}{'' if amount == 1 else 's'}"


def parse_window(value: Any, path: str = "window") -> tuple[float, str]:
    """``"10m"`` -> ``(600.0, "10 minutes")``; a :class:`RuleError` at ``path`` otherwise."""
    parts = _window_parts(value)
    if parts is None:
        raise RuleError("a window is a number followed by s, m, h or d, such as '10m'.", path)
    amount, unit = parts
    seconds = amount * UNITS[unit][0]
    if seconds <= 0:
        raise RuleError("the window must be longer than zero.", path)
    if seconds > MAX_WINDOW:
        raise RuleError(f"the window can be at most {MAX_WINDOW // 86400} days.", path)
    return float(seconds), _amount_words(amount, unit)


def window_words(value: Any) -> str | None:
    """``"10m"`` -> ``"10 minutes"``; None when it is not a window (for descriptions)."""
    parts = _window_parts(value)
    return None if parts is None else _amount_words(*parts)


# -- comparisons --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Operator:
    """A comparison operator (``"op"`` of feature, context and model conditions)."""

    name: str
    label: str  # in the rule builder's menu
    words: str  # in descriptions: "the device is one of ..."
    kinds: tuple[str, ...]  # the kinds of value it applies to: "number", "string"
    symbol: str = ""  # in reasons: "engagement score is 12 (≥ 10)"; "" -> the name in words


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("eq", "is", "is", ("number", "string"), "="),
        Operator("ne", "is not", "is not", ("number", "string"), "≠"),
        Operator("lt", "<", "is less than", ("number",), "<"),
        Operator("lte", "≤", "is at most", ("number",), "≤"),
        Operator("gt", ">", "is more than", ("number",), ">"),
        Operator("gte", "≥", "is at least", ("number",), "≥"),
        Operator("in", "is one of", "is one of", ("number", "string")),
        Operator("not_in", "is none of", "is none of", ("number", "string")),
        Operator("contains", "contains", "contains", ("string",)),
        Operator("regex", "matches pattern", "matches the pattern", ("string",)),
        Operator("exists", "is known", "is known", ("number", "string")),
    )
}
_COMPARE = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


def operators_for(kind: str) -> list[str]:
    """The names of the operators for a kind of value ("number" or "string"), sorted."""
    return sorted(name for name, op in OPERATORS.items() if kind in op.kinds)


def compile_comparison(node: dict, path: str, kind: str) -> tuple[Callable[[Any], bool], str, Any]:
    """A predicate over a value (None: unknown) from the node's ``op`` and ``value``, validated
    for values of ``kind`` ("number" or "string"); also returns the op and the target."""
    op = node.get("op")
    ops = operators_for(kind)
    if op not in ops:
        raise RuleError(f"'op' must be one of {', '.join(ops)}.", join_path(path, "op"))
    if op == "exists":
        return (lambda v: v is not None), op, None
    target = node.get("value")
    vpath = join_path(path, "value")
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


def reason_value(value: Any) -> str:
    """A value as a reason shows it: 0.7200 -> "0.72", None -> "unknown"."""
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return "unknown" if value is None else str(value)


def reason_comparison(op: str, target: Any) -> str:
    """A comparison as a reason shows it: ``("gte", 10)`` -> "≥ 10"."""
    if op == "exists":
        return "is known"
    symbol = OPERATORS[op].symbol
    if symbol:
        return f"{symbol} {target}"
    return f"{op.replace('_', ' ')} {target}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def reason_check(subject: str, value: Any, op: str, target: Any, matched: bool) -> str:
    """A comparison's reason worded by its result, so that a reason never reads as if a
    condition held when it did not. Held: "engagement score is 12 (≥ 10)". Failed: which
    comparison failed and, for numbers, by how much: "engagement score is 8, not ≥ 10 (2 too
    low)", "days since last seen is 40, not < 30 (10 too high)", "the device is unknown, so
    not = mobile"."""
    shown = reason_value(value)
    wanted = reason_comparison(op, target)
    if matched:
        return f"{subject} is {shown} ({wanted})"
    if value is None:
        return f"{subject} is unknown, so not {wanted}"
    gap = comparison_gap(value, op, target)
    return f"{subject} is {shown}, not {wanted}" + (f" ({gap})" if gap else "")


def comparison_gap(value: Any, op: str, target: Any) -> str | None:
    """How far a number is from satisfying an ordered comparison it fails: "2 too low",
    "10 too high", "at the limit" (for a strict comparison met with equality); None when the
    comparison holds or is not an ordered one on numbers."""
    if not (_number(value) and _number(target)) or op not in _COMPARE or op in ("eq", "ne"):
        return None
    if _COMPARE[op](value, target):
        return None
    distance = abs(value - target)
    if distance == 0:
        return "at the limit, which is excluded"
    return f"{reason_value(float(distance))} too {'low' if op in ('gt', 'gte') else 'high'}"


# -- what a condition type is -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Field:
    """One key of a condition node besides ``type``: what validation accepts and what the rule
    builder shows. ``kind`` tells the builder which control to draw (``event``, ``integer``,
    ``number``, ``window``, ``text``, ``path``, ``slug``, ``choice``, ``operator``, ``value``,
    ``filter``, ``condition``, ``conditions``); ``default`` is the value assumed when the key is
    absent; ``choices`` lists the allowed values (plain values, or ``{"value", "label", ...}``
    objects) and ``suggestions`` common values of a free field."""

    name: str
    kind: str
    label: str = ""
    required: bool = False
    default: Any = None
    choices: tuple = ()
    suggestions: tuple = ()
    help: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "label": self.label or self.name.replace("_", " "),
            "required": self.required,
            "default": self.default,
            "choices": list(self.choices),
            "suggestions": list(self.suggestions),
            "help": self.help,
        }


@dataclass(slots=True)
class CompileOptions:
    """What compiling one rule carries from node to node: the site's time zone (for conditions
    on the local time), the number of nodes so far, the current depth and whether every
    condition so far can be decided from the request alone."""

    tz: tzinfo = UTC
    nodes: int = 0
    depth: int = 0
    context_only: bool = True

    def compile(self, node: Any, path: str) -> Evaluator:
        """Compile a nested condition found at ``path`` (for conditions that contain others)."""
        self.depth += 1
        try:
            return _compile(node, path, self)
        finally:
            self.depth -= 1


class Condition:
    """One type of rule condition: the node ``{"type": <type>, ...}``.

    To add a condition type, subclass this, set the class attributes, implement
    :meth:`compile` and :meth:`describe`, and register the class with
    :func:`register_condition` (in your app's ``AppConfig.ready()``). The engine then compiles
    and validates it, describes it to editors, offers it in the rule builder and reports what it
    refers to. Instances hold no state: one instance serves every rule.

    - ``type``: the ``"type"`` of the node (lower case, unique).
    - ``label``: its name in the rule builder ("Request context").
    - ``fields``: the node's keys besides ``type``, as :class:`Field` objects. Any other key is
      refused before :meth:`compile` is called.
    - ``context_only``: True when the condition is decided from the request and the clock alone
      (no stored data): segments using only such conditions are decided inside each request,
      with or without consent, storing nothing.
    - ``role``: ``"condition"``; the built-in groups are ``"group"`` and ``not`` is
      ``"negation"`` (the rule builder draws those itself).
    """

    type: ClassVar[str] = ""
    label: ClassVar[str] = ""
    fields: ClassVar[tuple[Field, ...]] = ()
    context_only: ClassVar[bool] = False
    role: ClassVar[str] = "condition"

    def validate(self, node: dict, path: str) -> None:
        """Refuse keys the type does not take (a typo must not silently become a default).
        Called before :meth:`compile`; the values are validated by :meth:`compile`."""
        known = {f.name: f for f in self.fields}
        for key in node:
            if key != "type" and key not in known:
                expected = ", ".join(sorted(known)) or "no other keys"
                raise RuleError(
                    f"unknown key {key!r}; {self.type} takes {expected}.",
                    join_path(path, str(key)),
                )
        # An object whose keys are the field's choices (a filter): its keys are checked too.
        for name, field in known.items():
            value = node.get(name)
            if field.kind == "filter" and field.choices and isinstance(value, dict):
                allowed = [str(c) for c in field.choices]
                for key in value:
                    if key not in allowed:
                        raise RuleError(
                            f"unknown key {key!r} in {name!r}; it takes {' or '.join(allowed)}.",
                            join_path(join_path(path, name), str(key)),
                        )

    def compile(self, node: dict, path: str, options: CompileOptions) -> Evaluator:
        """Validate the node's values and return its evaluator.

        Raise :class:`RuleError` with a message an editor can act on and the path of the field,
        ``join_path(path, "window")``. The evaluator, ``evaluate(profile, now, context=None)``,
        returns an :class:`Outcome` and must never raise: ``profile`` is a
        :class:`segments.api.Profile`, ``now`` a Unix time and ``context`` the request's
        context (device, referrer, utm_*, language, country, path) when the rule is evaluated
        inside a request, else None. Nested conditions compile with ``options.compile(child,
        child_path)``; ``options.tz`` is the site's time zone."""
        raise NotImplementedError(f"{type(self).__name__} must implement compile().")

    def describe(self, node: dict) -> str:
        """The condition in plain words, as it continues "Visitors matching ...": "at least 3
        page views in the last 10 minutes". Called for rules still being built, so the node may
        be incomplete or invalid: use ``node.get`` and placeholders ("?"). A ``TypeError``,
        ``ValueError``, ``AttributeError`` or ``LookupError`` reads as "an incomplete
        condition". Nested
        conditions are described with :func:`describe_condition`."""
        raise NotImplementedError(f"{type(self).__name__} must implement describe().")

    def references(self, node: dict) -> list[dict]:
        """What the node refers to outside the rule, for checks where the segment is saved:
        ``{"kind": "model", "model": <slug>, "cluster": <key or None>}`` for models."""
        return []

    def children(self, node: dict) -> list[tuple[str, Any]]:
        """The nested conditions, as ``(relative path, node)`` pairs (groups and ``not``)."""
        return []

    def new_node(self) -> dict:
        """The node the rule builder inserts when an editor adds this type."""
        return {"type": self.type}

    def catalog_entry(self) -> dict:
        """What the rule builder needs: the type, its label, role, fields and a new node."""
        return {
            "type": self.type,
            "label": self.label or self.type.replace("_", " "),
            "role": self.role,
            "context_only": self.context_only,
            "fields": [f.as_dict() for f in self.fields],
            "new": self.new_node(),
        }


# -- the registry of condition types ------------------------------------------------------------
_TYPE_RE = re.compile(r"[a-z][a-z0-9_]{0,39}\Z")
_registry: dict[str, Condition] = {}
C = TypeVar("C", bound=type[Condition])


def register_condition(cls: C) -> C:
    """Add a condition type (usable as a class decorator). Call it from ``AppConfig.ready()``
    (or import a module that uses it as a decorator there). Registering the same class again
    does nothing; registering another class under a type already taken is an error, so two apps
    cannot silently take the same name (:func:`unregister_condition` first to replace one)."""
    if not (isinstance(cls, type) and issubclass(cls, Condition)):
        raise TypeError(f"{cls!r} is not a Condition subclass.")
    name = cls.type
    if not isinstance(name, str) or not _TYPE_RE.match(name):
        raise ValueError(f"{cls.__name__}.type must be a lower-case name, not {name!r}.")
    current = _registry.get(name)
    if current is not None:
        if type(current) is cls:
            return cls
        raise ValueError(
            f"condition type {name!r} is already registered by {type(current).__qualname__}."
        )
    _registry[name] = cls()
    return cls


def unregister_condition(name: str) -> None:
    """Remove a condition type (tests; replacing a type). Unknown names are ignored."""
    _registry.pop(name, None)


def conditions() -> dict[str, Condition]:
    """The registered condition types by name, in the order they were registered."""
    return dict(_registry)


def _condition_for(node: Any) -> Condition | None:
    kind = node.get("type") if isinstance(node, dict) else None
    return _registry.get(kind) if isinstance(kind, str) else None


# -- compiling and validating -------------------------------------------------------------------
def compile_rule(tree: Any, *, tz: tzinfo = UTC) -> Evaluator:
    """Validate and compile a rule tree into a fast evaluator."""
    return _compile(tree, "", CompileOptions(tz))


def is_context_only(tree: Any) -> bool:
    """Whether the (valid) rule uses only request-context conditions."""
    options = CompileOptions(UTC)
    _compile(tree, "", options)
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


def _compile(node: Any, path: str, options: CompileOptions) -> Evaluator:
    options.nodes += 1
    if options.nodes > MAX_NODES:
        raise RuleError(f"a rule may have at most {MAX_NODES} conditions.", path)
    if options.depth > MAX_DEPTH:
        raise RuleError(f"conditions may be nested at most {MAX_DEPTH} deep.", path)
    if not isinstance(node, dict):
        raise RuleError("each condition must be an object with a 'type'.", path)
    condition = _condition_for(node)
    if condition is None:
        known = ", ".join(sorted(_registry))
        raise RuleError(
            f"unknown condition type {node.get('type')!r}; expected one of {known}.", path
        )
    if not condition.context_only:
        options.context_only = False
    try:
        condition.validate(node, path)
        return condition.compile(node, path, options)
    except RuleError:
        raise
    except Exception as exc:  # a condition type's own bug reads as an invalid rule, never more
        detail = f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__
        raise RuleError(
            f"the {condition.type} condition could not be compiled ({detail}).", path
        ) from exc


# -- describing ---------------------------------------------------------------------------------
_describe_depth: ContextVar[int] = ContextVar("describe_depth", default=0)


def describe_condition(node: Any) -> str:
    """One condition (and what it contains) in words. Never raises: a part that cannot be read
    (unknown type, missing or malformed field, nested too deep) is "an incomplete condition"."""
    depth = _describe_depth.get()
    condition = _condition_for(node)
    if depth > DESCRIBE_DEPTH or condition is None:
        return INCOMPLETE
    token = _describe_depth.set(depth + 1)
    try:
        return condition.describe(node)
    except (TypeError, ValueError, AttributeError, LookupError):
        return INCOMPLETE
    finally:
        _describe_depth.reset(token)


def describe_rule(tree: Any, *, strict: bool = False) -> str:
    """The whole rule as a sentence about visitors: "Visitors matching all of: at least 3 page
    views in the last 10 minutes; not (at least 1 purchase event in the last 30 days)."

    By default it never raises, so an editor sees the sentence change while building a rule,
    before it is valid. With ``strict=True`` the rule is validated first and an invalid one
    (including one whose type is not registered) raises :class:`RuleError`.
    """
    if strict:
        compile_rule(tree)
    return f"Visitors matching {describe_condition(tree)}."


# -- references and the catalog -----------------------------------------------------------------
def _walk(node: Any, path: str, depth: int = 0) -> Iterator[tuple[Condition, dict, str]]:
    condition = _condition_for(node)
    if condition is None or depth > DESCRIBE_DEPTH:
        return
    yield condition, node, path
    for part, child in condition.children(node):
        yield from _walk(child, join_path(path, part), depth + 1)


def rule_references(tree: Any) -> list[dict]:
    """What a rule refers to outside itself (see :meth:`Condition.references`), each with the
    ``type`` and ``path`` of the condition, in the order of the tree."""
    return [
        {**reference, "type": condition.type, "path": path}
        for condition, node, path in _walk(tree, "")
        for reference in condition.references(node)
    ]


def model_references(tree: Any) -> list[dict]:
    """The model and cluster conditions of a (valid) rule: ``{"model", "cluster", "path"}``
    each (``cluster`` None for score conditions), so the caller can check they exist."""
    return [
        {"model": r["model"], "cluster": r.get("cluster"), "path": r["path"]}
        for r in rule_references(tree)
        if r.get("kind") == "model"
    ]


def catalog() -> dict:
    """What rules can say, as plain data for the rule builder: the registered condition types
    (their catalog entries, in registration order), the comparison operators of each kind of
    value with their labels, the units of a window and the limits of a rule."""
    return {
        "types": sorted(_registry),
        "conditions": [c.catalog_entry() for c in _registry.values()],
        "operators": {kind: operators_for(kind) for kind in ("number", "string")},
        "operator_labels": {name: op.label for name, op in OPERATORS.items()},
        "units": [[unit, f"{word}s"] for unit, (_, word) in UNITS.items()],
        "max_conditions": MAX_NODES,
        "max_depth": MAX_DEPTH,
    }


__all__ = [
    "DESCRIBE_DEPTH",
    "INCOMPLETE",
    "MAX_DEPTH",
    "MAX_NODES",
    "NEVER",
    "OPERATORS",
    "UNITS",
    "CompileOptions",
    "Condition",
    "Evaluator",
    "Field",
    "Operator",
    "Outcome",
    "RuleError",
    "catalog",
    "comparison_gap",
    "compile_comparison",
    "compile_rule",
    "conditions",
    "describe_condition",
    "describe_rule",
    "is_context_only",
    "join_path",
    "model_references",
    "operators_for",
    "parse_window",
    "reason_check",
    "reason_comparison",
    "reason_value",
    "register_condition",
    "rule_references",
    "unregister_condition",
    "validate_rule",
    "window_words",
]
