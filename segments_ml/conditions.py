"""Conditions on the outputs of the ML models (pure: no Django). Importing this module
registers them.

- ``{"type": "model", "model": "buys-again", "op": "gte", "value": 0.6}``: a propensity
  model's score (0 to 1, operators as for features), or ``"top_percent": 10`` for visitors
  ranked in the model's top 10%.
- ``{"type": "cluster", "model": "rfm", "cluster": "champions"}``: the visitor's cluster in a
  clustering model.

The workers store the active models' outputs in the profile; these conditions only read them.
Whether the model exists is checked where the segment is saved, from :meth:`references`. They
belong with the (optional) ML app, which registers them from its ``ready()`` by importing
this module; without it, rules have no ``model``/``cluster`` conditions.
"""

import re
from typing import Any

from segments.api import (
    NEVER,
    CompileOptions,
    Condition,
    Evaluator,
    Field,
    Outcome,
    Profile,
    RuleError,
    compile_comparison,
    describe_comparison,
    join_path,
    quoted,
    reason_check,
    reason_value,
    register_condition,
)

__all__ = ["ClusterCondition", "ModelCondition"]

_MODEL_SLUG_RE = re.compile(r"[a-z0-9_-]{1,40}\Z")
_CLUSTER_KEY_RE = re.compile(r"[a-z0-9_-]{1,64}\Z")
_MODEL_FIELD = Field(
    "model", "slug", "model (slug)", required=True, help="lower-case letters, digits, - or _"
)


def _model_slug(node: dict, path: str) -> str:
    slug = node.get("model")
    if not isinstance(slug, str) or not _MODEL_SLUG_RE.match(slug):
        raise RuleError(
            "'model' must be a model's slug (lower-case letters, digits, - or _).",
            join_path(path, "model"),
        )
    return slug


def _label(slug: str) -> str:
    return slug.replace("_", " ").replace("-", " ")


@register_condition
class ModelCondition(Condition):
    """A propensity model's score (0-1), or its rank: ``top_percent`` 10 holds for visitors
    scored in the top 10% of the population the model was trained on."""

    type = "model"
    label = "Model score"
    fields = (
        _MODEL_FIELD,
        Field("op", "operator", "score", choices=("gte", "gt", "lte", "lt")),
        Field("value", "number", "value (0-1)"),
        Field("top_percent", "number", "top %"),
    )

    def compile(self, node: dict, path: str, options: CompileOptions) -> Evaluator:
        slug = _model_slug(node, path)
        label = _label(slug)
        top = node.get("top_percent")
        if top is not None:
            if "op" in node or "value" in node:
                raise RuleError("give either 'top_percent' or 'op' and 'value', not both.", path)
            if isinstance(top, bool) or not isinstance(top, int | float) or not 0 < top < 100:
                raise RuleError(
                    "'top_percent' must be a number above 0 and below 100, such as 10.",
                    join_path(path, "top_percent"),
                )
            floor = 100 - top

            def evaluate_top(profile: Profile, now: float, context: dict | None = None) -> Outcome:
                entry = profile.scores.get(slug)
                if not isinstance(entry, list) or len(entry) != 2:
                    return Outcome(False, NEVER, (f"not scored by {label} yet",))
                rank = entry[1]
                matched = rank >= floor
                ranked = (
                    f"{label} score {reason_value(entry[0])} ranks in the top "
                    f"{reason_value(max(100 - rank, 1))}%"
                )
                if matched:
                    return Outcome(
                        True, NEVER, lambda: (f"{ranked} (top {reason_value(top)}% required)",)
                    )
                return Outcome(
                    False,
                    NEVER,
                    lambda: (
                        f"{ranked}, not in the top {reason_value(top)}% required "
                        f"({reason_value(float(floor - rank))} percentile points short)",
                    ),
                )

            return evaluate_top

        test, op, target = compile_comparison(node, path, "number")
        if op in ("lt", "lte", "gt", "gte", "eq", "ne") and not 0 <= target <= 1:
            raise RuleError(
                "a score is a probability between 0 and 1, such as 0.6.", join_path(path, "value")
            )

        def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
            entry = profile.scores.get(slug)
            score = entry[0] if isinstance(entry, list) and entry else None
            matched = test(score)
            if score is None:
                return Outcome(matched, NEVER, (f"not scored by {label} yet",))
            return Outcome(
                matched,
                NEVER,
                lambda: (reason_check(f"{label} score", score, op, target, matched),),
            )

        return evaluate

    def describe(self, node: dict) -> str:
        model = quoted(node.get("model"))
        if node.get("top_percent") is not None:
            return f"among the top {quoted(node.get('top_percent'))}% scored by model {model}"
        return describe_comparison(f"the score of model {model}", node)

    def references(self, node: dict) -> list[dict[str, Any]]:
        return [{"kind": "model", "model": node.get("model"), "cluster": None}]

    def new_node(self) -> dict:
        return {"type": self.type, "model": "", "op": "gte", "value": 0.5}


@register_condition
class ClusterCondition(Condition):
    """Membership of a cluster of a clustering model, by its stable key."""

    type = "cluster"
    label = "Model cluster"
    fields = (
        _MODEL_FIELD,
        Field("cluster", "slug", "cluster", required=True, help="a cluster's key"),
    )

    def compile(self, node: dict, path: str, options: CompileOptions) -> Evaluator:
        slug = _model_slug(node, path)
        key = node.get("cluster")
        if not isinstance(key, str) or not _CLUSTER_KEY_RE.match(key):
            raise RuleError(
                "'cluster' must be a cluster's key, such as 'champions'.",
                join_path(path, "cluster"),
            )
        label = _label(slug)

        def evaluate(profile: Profile, now: float, context: dict | None = None) -> Outcome:
            actual = profile.scores.get(slug)
            if not isinstance(actual, str):
                return Outcome(False, NEVER, (f"not placed in a {label} cluster yet",))
            if actual == key:
                return Outcome(True, NEVER, (f"in the {key} cluster of {label}",))
            return Outcome(False, NEVER, (f"in the {actual} cluster of {label}, not {key}",))

        return evaluate

    def describe(self, node: dict) -> str:
        return f"in cluster {quoted(node.get('cluster'))} of model {quoted(node.get('model'))}"

    def references(self, node: dict) -> list[dict[str, Any]]:
        return [{"kind": "model", "model": node.get("model"), "cluster": node.get("cluster")}]

    def new_node(self) -> dict:
        return {"type": self.type, "model": "", "cluster": ""}
