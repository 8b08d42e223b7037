"""The experiments' admin: create and edit with arms and goals, validation, the actions with
and without ``experiments.run_experiment`` (403, buttons hidden), the audit log, the results
screen and its CSV/XLSX exports (``view_experiment_results``)."""

import csv
import io

import openpyxl
import pytest
from django.urls import reverse
from wagtail.models import ModelLogEntry

from experiments import actions, targets
from experiments.models import Experiment, ResultSnapshot
from experiments.snapshots import snapshot_experiment
from tests.builders import personalised_page, segment
from tests.cms_blocks.helpers import login

from .helpers import conversions, experiment, statistic

pytestmark = pytest.mark.django_db

EDITOR_PERMS = (
    "experiments.add_experiment",
    "experiments.change_experiment",
    "experiments.view_experiment",
)


@pytest.fixture
def page():
    segment("engaged")
    return personalised_page(variants=[("engaged", "Offer A"), ("engaged", "Offer B")])


def block_of(page):
    block_id = next(iter(targets.personalised_blocks(page)))
    return block_id, [o.key for o in targets.block_options(page, block_id)]


def management(prefix, total, initial=0):
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def create_data(target, arms, **overrides):
    block_id, _keys = block_of(target)
    data = {
        "name": "Banner test",
        "key": "banner-test",
        "description": "",
        "kind": "block",
        "page": str(target.pk),
        "block_id": block_id,
        "segment": "",
        "mode": "fixed",
        "coverage": "1",
        "holdout_percent": "0",
        "namespace": "",
        "namespace_start": "0",
        "namespace_end": "1",
        "hash_version": "2",
        "sequential": "on",
        "sequential_tuning": "5000",
        "alpha": "0.05",
        "minimum_detectable_effect": "0.1",
        "minimum_sample": "100",
        "bandit_floor": "0.01",
        "bandit_minimum": "100",
        "bandit_discount": "1",
        **management("arms", len(arms)),
        **management("goals", 1),
        "goals-0-name": "Clicks",
        "goals-0-event": "click",
        "goals-0-match": "{}",
        "goals-0-metric": "conversion",
        "goals-0-value_property": "value",
        "goals-0-window_seconds": "604800",
        "goals-0-role": "primary",
        "goals-0-direction": "higher",
    }
    for i, (name, key, weight) in enumerate(arms):
        data |= {f"arms-{i}-name": name, f"arms-{i}-key": key, f"arms-{i}-weight": str(weight)}
    data.update(overrides)
    return data


def test_create_an_experiment_with_arms_and_goals(page):
    _block, keys = block_of(page)
    client = login("editor", *EDITOR_PERMS)
    form = client.get(reverse("experiments:add"))
    assert form.status_code == 200
    assert b'name="arms-TOTAL_FORMS"' in form.content and b'name="goals-0-event"' in form.content
    response = client.post(
        reverse("experiments:add"),
        create_data(page, [("Default", "default", 1), ("Offer B", keys[2], 2)]),
    )
    assert response.status_code == 302, response.context["form"].errors
    exp = Experiment.objects.get(key="banner-test")
    assert [(a.index, a.key, a.weight) for a in exp.arms.all()] == [
        (0, "default", 1.0),
        (1, keys[2], 2.0),
    ]
    assert exp.goals.get().event == "click"
    assert exp.status == Experiment.Status.DRAFT
    assert exp.created_by.username == "editor"


def test_a_new_block_experiment_with_its_page_chosen_lists_the_pages_blocks(page):
    """The block's id is asked for before the experiment is saved: the form shown again with
    the page chosen (and no block yet) lists the page's personalised blocks and variants."""
    block_id, keys = block_of(page)
    client = login("editor", *EDITOR_PERMS)
    response = client.post(
        reverse("experiments:add"), create_data(page, [], block_id="", segment="")
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Choose the personalised block to test." in html
    assert 'id="experiment-options"' in html
    assert f"<code>{block_id}</code>" in html
    assert all(f"<code>{key}</code>" in html for key in keys)
    assert not Experiment.objects.exists()


@pytest.mark.parametrize(
    ("arms", "overrides", "message"),
    [
        ([("Only", "default", 1)], {}, "at least two arms"),
        ([("A", "default", 1), ("B", "KEY2", 0)], {}, "positive weight"),
        ([("A", "default", 1), ("B", "nope", 1)], {}, "Select a valid choice"),
        ([("A", "default", 1), ("B", "KEY2", 1)], {"coverage": "1.5"}, "between 0.0 and 1.0"),
        (
            [("A", "default", 1), ("B", "KEY2", 1)],
            {"holdout_percent": "101"},
            "between 0.0 and 100",
        ),
        ([("A", "default", 1), ("B", "KEY2", 1)], {"block_id": "missing"}, "no personalised block"),
        ([("A", "default", 1), ("B", "KEY2", 1)], {"page": ""}, "Choose the page"),
    ],
)
def test_validation_errors(page, arms, overrides, message):
    _block, keys = block_of(page)
    arms = [(n, keys[1] if k == "KEY2" else k, w) for n, k, w in arms]
    client = login("editor", *EDITOR_PERMS)
    response = client.post(reverse("experiments:add"), create_data(page, arms, **overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Experiment.objects.exists()


def test_edit_a_running_experiment_keeps_its_arms_but_changes_weights_and_coverage(page):
    _block, keys = block_of(page)
    block_id = _block
    exp = experiment(
        page=page,
        block_id=block_id,
        status=Experiment.Status.RUNNING,
        arms=[("Default", "default", 1), ("A", keys[1], 1)],
    )
    client = login("editor", *EDITOR_PERMS)
    arms = list(exp.arms.all())
    goal = exp.goals.get()
    data = create_data(page, [], coverage="0.5")
    data |= management("arms", 2, initial=2) | management("goals", 1, initial=1)
    data |= {"goals-0-id": str(goal.pk), "key": "another-key", "block_id": "elsewhere"}
    for i, arm in enumerate(arms):
        data |= {
            f"arms-{i}-id": str(arm.pk),
            f"arms-{i}-name": arm.name,
            f"arms-{i}-key": "default",  # disabled once started: ignored
            f"arms-{i}-weight": str(3 if i else 1),
        }
    response = client.post(reverse("experiments:edit", args=[exp.pk]), data)
    assert response.status_code == 302, response.context["form"].errors
    exp.refresh_from_db()
    assert exp.coverage == 0.5 and exp.key == "banner-test" and exp.block_id == block_id
    assert [(a.index, a.key, a.weight) for a in exp.arms.all()] == [
        (0, "default", 1.0),
        (1, keys[1], 3.0),
    ]
    entry = ModelLogEntry.objects.get(action=actions.CHANGE, object_id=str(exp.pk))
    assert entry.user.username == "editor"
    assert entry.data["changes"] == [
        {"field": "coverage", "before": 1.0, "after": 0.5},
        {"field": "weight of A", "before": 1.0, "after": 3.0},
    ]
    history = client.get(reverse("experiments:history", args=[exp.pk])).content.decode()
    assert "coverage from “1.0” to “0.5”" in history


def test_actions_need_run_experiment(page):
    _block, keys = block_of(page)
    exp = experiment(page=page, block_id=_block, arms=[("D", "default", 1), ("A", keys[1], 1)])
    editor = login("editor", *EDITOR_PERMS)
    edit = editor.get(reverse("experiments:edit", args=[exp.pk]))
    assert edit.status_code == 200
    assert reverse("experiments:start", args=[exp.pk]) not in edit.content.decode()
    for name in ("start", "pause", "stop", "rerandomise", "promote"):
        url = reverse(f"experiments:{name}", args=[exp.pk])
        assert editor.get(url).status_code == 403
        assert editor.post(url).status_code == 403
    exp.refresh_from_db()
    assert exp.status == Experiment.Status.DRAFT and exp.assignment_version == 1


def test_start_pause_stop_with_run_experiment_are_logged(page):
    _block, keys = block_of(page)
    exp = experiment(page=page, block_id=_block, arms=[("D", "default", 1), ("A", keys[1], 1)])
    runner = login("runner", *EDITOR_PERMS, "experiments.run_experiment")
    edit = runner.get(reverse("experiments:edit", args=[exp.pk])).content.decode()
    assert reverse("experiments:start", args=[exp.pk]) in edit
    confirm = runner.get(reverse("experiments:start", args=[exp.pk]))
    assert confirm.status_code == 200 and b"Start this experiment" in confirm.content

    for name, status in [
        ("start", "running"),
        ("pause", "paused"),
        ("start", "running"),
        ("rerandomise", "running"),
        ("stop", "stopped"),
    ]:
        response = runner.post(reverse(f"experiments:{name}", args=[exp.pk]))
        assert response.status_code == 302
        exp.refresh_from_db()
        assert exp.status == status, name
    assert exp.assignment_version == 2
    assert exp.started_at is not None and exp.stopped_at is not None
    logged = list(
        ModelLogEntry.objects.filter(object_id=str(exp.pk))
        .order_by("pk")
        .values_list("action", "user__username")
    )
    assert logged == [
        (actions.START, "runner"),
        (actions.PAUSE, "runner"),
        (actions.START, "runner"),
        (actions.RERANDOMISE, "runner"),
        (actions.STOP, "runner"),
    ]
    history = runner.get(reverse("experiments:history", args=[exp.pk]))
    assert b"Re-randomised: assignment version 1 to 2" in history.content


def test_start_is_refused_when_the_experiment_cannot_run(page):
    exp = experiment(page=page, block_id="gone", arms=[("D", "default", 1), ("A", "x", 1)])
    runner = login("runner", *EDITOR_PERMS, "experiments.run_experiment")
    response = runner.post(reverse("experiments:start", args=[exp.pk]), follow=True)
    assert b"no personalised block" in response.content
    exp.refresh_from_db()
    assert exp.status == Experiment.Status.DRAFT
    assert not ModelLogEntry.objects.filter(action=actions.START).exists()


def test_promote_from_the_admin(page):
    block_id, keys = block_of(page)
    exp = experiment(
        page=page,
        block_id=block_id,
        status=Experiment.Status.RUNNING,
        arms=[("D", "default", 1), ("A", keys[1], 1), ("B", keys[2], 1)],
        minimum_sample=10,
    )
    statistic(exp, 0, conversions(1000, 50))
    statistic(exp, 1, conversions(1000, 55))
    statistic(exp, 2, conversions(1000, 120))
    admin = login("admin", superuser=True)
    confirm = admin.get(reverse("experiments:promote", args=[exp.pk]))
    assert b'value="2" checked' in confirm.content  # the results' winner is suggested
    response = admin.post(reverse("experiments:promote", args=[exp.pk]), {"arm": "2"})
    assert response.status_code == 302
    exp.refresh_from_db()
    assert exp.winner.index == 2 and exp.status == Experiment.Status.STOPPED
    assert ModelLogEntry.objects.filter(action=actions.PROMOTE, object_id=str(exp.pk)).exists()


# -- results -------------------------------------------------------------------------------------
@pytest.fixture
def measured():
    exp = experiment(minimum_sample=10, status=Experiment.Status.RUNNING)
    statistic(exp, 0, conversions(1000, 100))
    statistic(exp, 1, conversions(1000, 200))
    snapshot_experiment(exp)
    return exp


def test_results_need_their_permission(measured):
    url = reverse("experiments:results", args=[measured.pk])
    assert login("nobody", *EDITOR_PERMS).get(url).status_code == 403
    assert login("reader", "experiments.view_experiment_results").get(url).status_code == 200
    assert login("runner", "experiments.run_experiment").get(url).status_code == 200


def test_results_screen_shows_lift_srm_progress_and_chart(measured):
    response = login("reader", "experiments.view_experiment_results").get(
        reverse("experiments:results", args=[measured.pk])
    )
    html = response.content.decode()
    assert 'data-srm="ok"' in html
    assert 'data-verdict="winner"' in html
    assert "+100.0%" in html  # the lift of B
    assert "Progress:" in html
    assert "Cumulative lift of the primary goal" in html
    assert ResultSnapshot.objects.count() == 1


def test_results_screen_warns_of_sample_ratio_mismatch():
    exp = experiment(minimum_sample=10)
    statistic(exp, 0, conversions(1000, 100))
    statistic(exp, 1, conversions(1300, 150))
    html = (
        login("reader", "experiments.view_experiment_results")
        .get(reverse("experiments:results", args=[exp.pk]))
        .content.decode()
    )
    assert 'data-srm="flagged"' in html and "Sample-ratio mismatch" in html
    assert 'data-verdict="winner"' not in html


def test_results_export_csv_and_xlsx(measured):
    client = login("reader", "experiments.view_experiment_results")
    url = reverse("experiments:results", args=[measured.pk])
    response = client.get(url, {"export": "csv"})
    assert response.status_code == 200
    rows = list(
        csv.DictReader(
            io.StringIO(
                b"".join(response.streaming_content).decode()
                if response.streaming
                else response.content.decode()
            )
        )
    )
    assert [r["arm"] for r in rows] == ["Control (control)", "B"]
    assert float(rows[1]["lift"]) == pytest.approx(1.0)
    assert rows[1]["p_holm"] != ""

    response = client.get(url, {"export": "xlsx"})
    assert response.status_code == 200
    content = b"".join(response.streaming_content) if response.streaming else response.content
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    values = list(sheet.values)
    assert values[0][:3] == ("goal", "segment", "arm")
    assert values[2][6] == pytest.approx(1.0)


def test_menu_item_and_listing(page):
    exp = experiment("listed-test")
    client = login("editor", *EDITOR_PERMS)
    index = client.get(reverse("experiments:index"))
    assert index.status_code == 200 and b"Listed Test" in index.content
    results = reverse("experiments:results", args=[exp.pk]).encode()
    assert results not in index.content
    reader = login("reader", *EDITOR_PERMS, "experiments.view_experiment_results")
    assert results in reader.get(reverse("experiments:index")).content
    dashboard = client.get(reverse("wagtailadmin_home"))
    assert reverse("experiments:index").encode() in dashboard.content


def test_empty_arms_are_the_default_against_the_segments_variants():
    engaged = segment("engaged")
    segment("loyal")
    target = personalised_page(
        variants=[("engaged", "Offer A"), ("loyal", "Loyal"), (["loyal", "engaged"], "Both")]
    )
    _block, keys = block_of(target)
    client = login("editor", *EDITOR_PERMS)
    response = client.post(
        reverse("experiments:add"), create_data(target, [], segment=str(engaged.pk))
    )
    assert response.status_code == 302, response.context["formsets"]["arms"].non_form_errors()
    exp = Experiment.objects.get()
    assert [a.key for a in exp.arms.all()] == ["default", keys[1], keys[3]]
    assert [a.index for a in exp.arms.all()] == [0, 1, 2]


def test_empty_arms_without_two_candidates_are_refused():
    segment("engaged")
    lonely = segment("lonely")
    target = personalised_page(variants=[("engaged", "Offer A")])
    client = login("editor", *EDITOR_PERMS)
    response = client.post(
        reverse("experiments:add"), create_data(target, [], segment=str(lonely.pk))
    )
    assert response.status_code == 200
    assert b"at least two arms" in response.content
    assert not Experiment.objects.exists()


def test_a_holdout_experiment_gets_default_against_personalised(page):
    engaged = segment_model_get("engaged")
    client = login("editor", *EDITOR_PERMS)
    data = create_data(page, [], kind="holdout", segment=str(engaged.pk))
    response = client.post(reverse("experiments:add"), data)
    assert response.status_code == 302, response.context["form"].errors
    exp = Experiment.objects.get()
    assert [a.key for a in exp.arms.all()] == ["default", "personalised"]
    assert actions.problems(exp) == []

    # A variant key is not an arm of a holdout.
    _block, keys = block_of(page)
    data = create_data(page, [("D", "default", 1), ("V", keys[1], 1)], kind="holdout", key="h2")
    response = client.post(reverse("experiments:add"), data)
    assert response.status_code == 200 and b"Select a valid choice" in response.content


def segment_model_get(slug):
    from segments.models import Segment

    return Segment.objects.get(slug=slug)


def test_bandit_weights_over_time_on_the_results_screen():
    from datetime import timedelta

    from django.utils import timezone

    from experiments.models import WeightHistory

    exp = experiment(mode=Experiment.Mode.BANDIT, minimum_sample=10)
    now = timezone.now()
    for hours, weights in [(2, [0.5, 0.5]), (1, [0.3, 0.7]), (0, [0.1, 0.9])]:
        WeightHistory.objects.create(
            experiment=exp, computed_at=now - timedelta(hours=hours), weights=weights
        )
    html = (
        login("reader", "experiments.view_experiment_results")
        .get(reverse("experiments:results", args=[exp.pk]))
        .content.decode()
    )
    assert "Bandit weights over time" in html
    assert "<td>0.9</td>" in html  # the chart's data table: B's last weight


def test_a_global_holdout_needs_no_page_and_runs_alone(page):
    client = login("runner", *EDITOR_PERMS, "experiments.run_experiment")
    for key in ("global-1", "global-2"):
        data = create_data(page, [], kind="global_holdout", key=key, page="", block_id="")
        response = client.post(reverse("experiments:add"), data)
        assert response.status_code == 302, response.context["form"].errors
    first, second = Experiment.objects.order_by("pk")
    assert [a.key for a in first.arms.all()] == ["default", "personalised"]
    client.post(reverse("experiments:start", args=[first.pk]))
    response = client.post(reverse("experiments:start", args=[second.pk]), follow=True)
    assert b"Another global holdout is running" in response.content
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("running", "draft")


def test_a_running_experiment_is_stopped_before_it_is_deleted():
    exp = experiment(status=Experiment.Status.RUNNING)
    client = login("editor", *EDITOR_PERMS, "experiments.delete_experiment")
    url = reverse("experiments:delete", args=[exp.pk])
    response = client.post(url)
    assert response.status_code == 302 and Experiment.objects.filter(pk=exp.pk).exists()
    Experiment.objects.filter(pk=exp.pk).update(status=Experiment.Status.STOPPED)
    assert client.post(url).status_code == 302
    assert not Experiment.objects.filter(pk=exp.pk).exists()


def test_suggested_arms_of_variants_named_alike_are_told_apart(page):
    """Two unlabelled variants for the same segment are both named after it: their arms must
    still read differently in the results."""
    engaged = segment_model_get("engaged")
    client = login("editor", *EDITOR_PERMS)
    response = client.post(
        reverse("experiments:add"), create_data(page, [], segment=str(engaged.pk))
    )
    assert response.status_code == 302, response.context["formsets"]["arms"].non_form_errors()
    names = [a.name for a in Experiment.objects.get().arms.all()]
    assert len(set(names)) == len(names) == 3, names
