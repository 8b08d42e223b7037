"""One definition per rule condition type (segments.rules): each type validates, compiles,
describes itself, lists its catalog entry and names what it refers to; unknown keys are
refused; a site can register its own type. Pure logic, no Django database."""

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from segments.profiles.features import Profile
from segments.rules import (
    INCOMPLETE,
    Condition,
    Outcome,
    RuleError,
    catalog,
    compile_rule,
    conditions,
    describe_condition,
    describe_rule,
    is_context_only,
    model_references,
    register_condition,
    rule_references,
    unregister_condition,
    validate_rule,
)
from segments_ml.conditions import ClusterCondition, ModelCondition

BUILT_IN = {
    "all",
    "any",
    "not",
    "event_count",
    "event_without",
    "feature",
    "visited",
    "page_visits",
    "context",
    "query",
    "model",
    "cluster",
}
ENGAGED = {"type": "event_count", "event": "page_view", "min": 3, "window": "10m"}
# One valid node of each built-in type, its description and what it refers to.
EXAMPLES = {
    "all": (
        {"type": "all", "conditions": [ENGAGED, {"type": "visited", "path": "/a/"}]},
        "all of: at least 3 page views in the last 10 minutes; a view of the page “/a/”",
        [],
    ),
    "any": (
        {"type": "any", "conditions": [ENGAGED, {"type": "visited", "path_prefix": "/b/"}]},
        "any of: at least 3 page views in the last 10 minutes; a view of a page under “/b/”",
        [],
    ),
    "not": (
        {"type": "not", "condition": ENGAGED},
        "not (at least 3 page views in the last 10 minutes)",
        [],
    ),
    "event_count": (
        {**ENGAGED, "max": 5, "filter": {"page_type": "guide"}},
        "between 3 and 5 page view (page type “guide”) events in the last 10 minutes",
        [],
    ),
    "event_without": (
        {"type": "event_without", "event": "add_to_cart", "without": "purchase", "window": "2h"},
        "add to cart in the last 2 hours and no purchase since",
        [],
    ),
    "feature": (
        {"type": "feature", "feature": "days_since_last_seen", "op": "lt", "value": 30},
        "days since last seen is less than 30",
        [],
    ),
    "visited": ({"type": "visited", "path": "/guides/"}, "a view of the page “/guides/”", []),
    "page_visits": (
        {"type": "page_visits", "path": "/pricing/", "min": 3},
        "viewed the page “/pricing/” at least 3 times",
        [],
    ),
    "query": (
        {"type": "query", "param": "ref", "op": "eq", "value": "newsletter"},
        "the query parameter “ref” is “newsletter”",
        [{"kind": "query_param", "param": "ref"}],
    ),
    "context": (
        {"type": "context", "attribute": "utm_campaign", "op": "regex", "value": "^spring"},
        "the campaign matches the pattern “^spring”",
        [],
    ),
    "model": (
        {"type": "model", "model": "churn", "op": "gt", "value": 0.25},
        "the score of model “churn” is more than 0.25",
        [{"kind": "model", "model": "churn", "cluster": None}],
    ),
    "cluster": (
        {"type": "cluster", "model": "rfm", "cluster": "champions"},
        "in cluster “champions” of model “rfm”",
        [{"kind": "model", "model": "rfm", "cluster": "champions"}],
    ),
}


def test_every_built_in_type_is_registered_once_with_an_example_here():
    assert set(conditions()) == BUILT_IN == set(EXAMPLES)
    assert catalog()["types"] == sorted(BUILT_IN)


@pytest.mark.parametrize("kind", sorted(BUILT_IN))
def test_each_built_in_type_compiles_describes_and_names_its_references(kind):
    node, words, references = EXAMPLES[kind]
    assert validate_rule(node) == []
    assert isinstance(compile_rule(node)(Profile(), 0.0), Outcome)
    assert conditions()[kind].describe(node) == words
    assert describe_rule(node) == f"Visitors matching {words}."
    assert conditions()[kind].references(node) == references
    assert [
        {k: v for k, v in r.items() if k not in ("path", "type")} for r in rule_references(node)
    ] == references


@pytest.mark.parametrize("kind", sorted(BUILT_IN))
def test_each_built_in_type_has_a_catalog_entry_naming_every_key_it_takes(kind):
    entries = {e["type"]: e for e in catalog()["conditions"]}
    entry = entries[kind]
    assert entry["label"] and entry["role"] in ("condition", "group", "negation")
    assert entry["new"]["type"] == kind
    node = EXAMPLES[kind][0]
    names = {f["name"] for f in entry["fields"]}
    assert set(node) - {"type"} <= names
    for f in entry["fields"]:
        assert f["kind"] and f["label"]
        assert isinstance(f["choices"], list) and isinstance(f["suggestions"], list)
    # What the builder inserts for a new condition is a valid rule (a model needs its slug).
    if kind not in ("model", "cluster"):
        assert validate_rule(entry["new"]) == []


def test_catalog_entries_list_the_grammar_the_builder_shows():
    data = catalog()
    entries = {e["type"]: e for e in data["conditions"]}
    assert [e["type"] for e in data["conditions"]][:3] == ["all", "any", "not"]
    assert entries["all"]["role"] == "group" and entries["not"]["role"] == "negation"
    assert entries["context"]["label"] == "Request context" and entries["context"]["context_only"]
    attribute = entries["context"]["fields"][0]
    assert attribute["name"] == "attribute"
    assert {c["value"]: c["kind"] for c in attribute["choices"]}["weekday"] == "number"
    fields = {f["name"]: f for f in entries["event_count"]["fields"]}
    assert fields["min"]["default"] == 1 and fields["window"]["kind"] == "window"
    assert fields["filter"]["choices"] == ["category", "page_type"]
    assert "add_to_cart" in fields["event"]["suggestions"]
    assert data["operators"]["string"] == [
        "contains",
        "eq",
        "exists",
        "in",
        "ne",
        "not_in",
        "regex",
    ]
    assert data["operator_labels"]["gte"] == "≥" and data["operator_labels"]["eq"] == "is"
    assert data["units"] == [["s", "seconds"], ["m", "minutes"], ["h", "hours"], ["d", "days"]]
    assert (data["max_conditions"], data["max_depth"]) == (64, 8)


def test_references_carry_the_type_and_path_and_model_references_keep_their_shape():
    tree = {"type": "any", "conditions": [ENGAGED, EXAMPLES["cluster"][0]]}
    assert rule_references(tree) == [
        {
            "kind": "model",
            "model": "rfm",
            "cluster": "champions",
            "type": "cluster",
            "path": "conditions[1]",
        }
    ]
    assert model_references(tree) == [
        {"model": "rfm", "cluster": "champions", "path": "conditions[1]"}
    ]


# -- unknown keys ---------------------------------------------------------------------------------
def test_a_typo_in_a_key_is_refused_with_the_key_and_its_path():
    typo = {"type": "event_count", "event": "page_view", "minn": 3, "window": "10m"}
    with pytest.raises(RuleError) as info:
        compile_rule(typo)
    assert info.value.path == "minn"
    assert info.value.message.startswith("unknown key 'minn'; event_count takes event, filter")
    nested = {"type": "any", "conditions": [ENGAGED, typo]}
    ((path, message),) = validate_rule(nested)
    assert path == "conditions[1].minn" and "'minn'" in message


@pytest.mark.parametrize(
    ("node", "key"),
    [
        ({"type": "all", "conditions": [ENGAGED], "condition": ENGAGED}, "condition"),
        ({"type": "not", "condition": ENGAGED, "conditions": [ENGAGED]}, "conditions"),
        ({**EXAMPLES["feature"][0], "params": "x"}, "params"),
        ({**EXAMPLES["visited"][0], "prefix": "/"}, "prefix"),
        ({**EXAMPLES["context"][0], "attr": "device"}, "attr"),
        ({**EXAMPLES["model"][0], "top": 10}, "top"),
        ({**EXAMPLES["cluster"][0], "label": "x"}, "label"),
        ({**EXAMPLES["event_without"][0], "minage": "5m"}, "minage"),
        ({**EXAMPLES["page_visits"][0], "count": 3}, "count"),
        ({**EXAMPLES["query"][0], "parameter": "ref"}, "parameter"),
    ],
)
def test_every_type_refuses_keys_it_does_not_take(node, key):
    ((path, message),) = validate_rule(node)
    assert path == key
    assert message.startswith(f"unknown key {key!r}; {node['type']} takes ")


# -- registration ---------------------------------------------------------------------------------
def _docs_example() -> dict:
    """Run the example of docs/rules.md ("Adding a condition type"), so it cannot go stale."""
    text = (Path(__file__).parents[2] / "docs" / "rules.md").read_text()
    code = re.search(r"```python\n(# mysite/conditions.py\n.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/rules.md", "exec"), namespace)  # noqa: S102 (our own docs)
    return namespace


EXAMPLE = _docs_example()
WeekdayIn = EXAMPLE["WeekdayIn"]


@pytest.fixture
def weekday_in():
    register_condition(WeekdayIn)
    try:
        yield
    finally:
        unregister_condition("weekday_in")
    assert "weekday_in" not in conditions()


def test_a_site_can_register_a_condition_type(weekday_in):
    rule = {"type": "all", "conditions": [ENGAGED, {"type": "weekday_in", "days": [5, 6]}]}
    assert validate_rule(rule) == []
    saturday = datetime(2024, 6, 1, 12, tzinfo=UTC).timestamp()
    evaluate = compile_rule({"type": "weekday_in", "days": [5, 6]}, tz=ZoneInfo("Europe/Paris"))
    outcome = evaluate(Profile(), saturday)
    assert outcome.matched and outcome.reasons == ("it is Saturday",)
    assert outcome.until == datetime(2024, 6, 2, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
    assert is_context_only({"type": "not", "condition": {"type": "weekday_in", "days": [0]}})
    assert describe_rule(rule) == (
        "Visitors matching all of: at least 3 page views in the last 10 minutes; "
        "a visit on Saturday or Sunday."
    )
    assert describe_condition({"type": "weekday_in", "days": [9]}) == INCOMPLETE
    assert validate_rule({"type": "weekday_in", "days": [7]}) == [
        ("days", "'days' must be a non-empty list of weekdays, 0 (Monday) to 6 (Sunday).")
    ]
    assert validate_rule({"type": "weekday_in", "days": [1], "day": 1})[0][0] == "day"
    entry = next(e for e in catalog()["conditions"] if e["type"] == "weekday_in")
    assert entry["label"] == "Day of the week" and entry["new"] == {
        "type": "weekday_in",
        "days": [5, 6],
    }
    assert entry["fields"][0]["choices"][6] == {"value": 6, "label": "Sunday"}
    assert "weekday_in" in catalog()["types"]


def test_registering_checks_the_class_and_its_name(weekday_in):
    assert register_condition(WeekdayIn) is WeekdayIn  # again: nothing happens

    class Other(WeekdayIn):
        pass

    with pytest.raises(ValueError, match="already registered by WeekdayIn"):
        register_condition(Other)

    class Shouting(WeekdayIn):
        type = "Weekday"

    with pytest.raises(ValueError, match="lower-case name"):
        register_condition(Shouting)
    with pytest.raises(TypeError):
        register_condition(dict)


def test_a_condition_without_compile_or_describe_says_what_is_missing():
    class Half(Condition):
        type = "half"

    register_condition(Half)
    try:
        # compile_rule raises only RuleError (a stored rule of this type is then broken, never
        # fatal: docs/rules.md), with the class's own message
        with pytest.raises(RuleError, match="Half must implement compile"):
            compile_rule({"type": "half"})
        with pytest.raises(NotImplementedError, match="Half must implement describe"):
            Half().describe({"type": "half"})
    finally:
        unregister_condition("half")


def test_unregistered_model_conditions_are_unknown_until_an_app_registers_them():
    """What happens when the ML app is not installed, and what its ready() does."""
    node = EXAMPLES["model"][0]
    unregister_condition("model")
    unregister_condition("cluster")
    try:
        with pytest.raises(RuleError, match="unknown condition type 'model'; expected one of"):
            compile_rule(node)
        with pytest.raises(RuleError, match="unknown condition type 'model'"):
            describe_rule(node, strict=True)
        assert describe_rule(node) == f"Visitors matching {INCOMPLETE}."
        assert model_references(node) == []
    finally:
        register_condition(ModelCondition)
        register_condition(ClusterCondition)
    assert validate_rule(node) == []
    assert describe_rule(node, strict=True) == f"Visitors matching {EXAMPLES['model'][1]}."
    assert list(conditions())[-2:] == ["model", "cluster"]


def test_describing_never_raises_and_stops_at_a_depth():
    assert (
        describe_condition({"type": "feature", "feature": "sessions", "op": ["eq"]}) == INCOMPLETE
    )
    deep = ENGAGED
    for _ in range(40):
        deep = {"type": "not", "condition": deep}
    assert describe_rule(deep).count("not (") == 17
    assert describe_rule(deep).endswith(f"({INCOMPLETE}){')' * 16}.")
