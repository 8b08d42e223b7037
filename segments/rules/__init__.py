"""Segment rules (pure: no Django): a JSON condition tree, validated and compiled once per
segment version, described in plain words, offered in the rule builder.

- :mod:`.engine`: compiling, validating and describing a tree, the :class:`Condition` base
  class and the registry of condition types, windows and comparison operators.
- :mod:`.core_conditions`: the built-in types (groups, ``not``, events, features, paths, context).
- :mod:`.text`: how values read in descriptions.

A site adds its own condition type by subclassing :class:`Condition` and calling
:func:`register_condition` from its ``AppConfig.ready()`` (see ``docs/rules.md``).
"""

from . import core_conditions  # noqa: F401 (importing it registers the built-in types)
from .engine import (
    DESCRIBE_DEPTH,
    INCOMPLETE,
    MAX_DEPTH,
    MAX_NODES,
    NEVER,
    OPERATORS,
    CompileOptions,
    Condition,
    Evaluator,
    Field,
    Operator,
    Outcome,
    RuleError,
    catalog,
    comparison_gap,
    compile_comparison,
    compile_rule,
    conditions,
    describe_condition,
    describe_rule,
    is_context_only,
    join_path,
    model_references,
    operators_for,
    parse_window,
    reason_check,
    reason_comparison,
    reason_value,
    register_condition,
    rule_references,
    unregister_condition,
    validate_rule,
    window_words,
)

__all__ = [
    "DESCRIBE_DEPTH",
    "INCOMPLETE",
    "MAX_DEPTH",
    "MAX_NODES",
    "NEVER",
    "OPERATORS",
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
