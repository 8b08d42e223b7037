"""The rule engine (pure: no Django). See :mod:`segments.rules.engine`."""

from .engine import (
    MAX_DEPTH,
    MAX_NODES,
    NEVER,
    Evaluator,
    Outcome,
    RuleError,
    compile_rule,
    is_context_only,
    model_references,
    parse_window,
    validate_rule,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "NEVER",
    "Evaluator",
    "Outcome",
    "RuleError",
    "compile_rule",
    "is_context_only",
    "model_references",
    "parse_window",
    "validate_rule",
]
