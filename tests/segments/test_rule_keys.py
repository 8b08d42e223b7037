"""Unknown keys in a rule are an error naming the key, for every registered condition type (the
built-in ones, the optional apps' and any a site adds) and in objects nested in a condition (a
filter): a typo such as ``"minn": 3`` must not silently become a default. Pure: no services."""

import pytest

from segments.rules import RuleError, compile_rule, conditions, validate_rule


def valid_nodes():
    """One node per registered type as the rule builder inserts it."""
    return [(name, condition.new_node()) for name, condition in conditions().items()]


@pytest.mark.parametrize(("name", "node"), valid_nodes(), ids=[n for n, _ in valid_nodes()])
def test_every_condition_type_refuses_a_key_it_does_not_take_by_name(name, node):
    with pytest.raises(RuleError) as error:
        compile_rule({**node, "zzz_typo": 3})
    assert error.value.path == "zzz_typo"
    assert "unknown key 'zzz_typo'" in error.value.message and name in error.value.message


@pytest.mark.parametrize(("name", "node"), valid_nodes(), ids=[n for n, _ in valid_nodes()])
def test_the_unknown_key_is_named_where_it_sits_in_a_tree(name, node):
    problems = validate_rule(
        {"type": "any", "conditions": [{"type": "not", "condition": {**node, "Typo": 1}}]}
    )
    assert problems[0][0] == "conditions[0].condition.Typo"
    assert "unknown key 'Typo'" in problems[0][1]


def test_an_unknown_key_in_a_filter_is_named():
    rule = {
        "type": "event_count",
        "event": "page_view",
        "window": "1d",
        "filter": {"category": "kitchen", "colour": "red"},
    }
    assert validate_rule(rule) == [
        ("filter.colour", "unknown key 'colour' in 'filter'; it takes category or page_type.")
    ]
    rule["filter"] = {"categroy": "kitchen"}
    assert validate_rule(rule)[0][0] == "filter.categroy"
    rule["filter"] = {"category": "kitchen"}
    assert validate_rule(rule) == []
