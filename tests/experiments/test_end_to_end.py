"""End to end without a browser: an editor creates and starts an experiment in the admin,
consented visitors are split by the real request path and counted by the real drain (Redis
and PostgreSQL), the results screen shows the counts they made, and promoting the winner
changes what the next visitor sees."""

import csv
import io

import pytest
from django.urls import reverse

import personalization.visitor
from consent.models import ConsentRecord
from experiments import runtime
from experiments.models import Experiment, Statistic
from tests.builders import consenting_browser, home_page, personalised_page, segment
from tests.cms_blocks.helpers import login
from tests.experiments.engine import drain, send

from .test_admin import EDITOR_PERMS, block_of, create_data

pytestmark = [pytest.mark.services, pytest.mark.django_db]

DEFAULT, VARIANT = "Standard offer", "ENGAGED offer"
VISITORS = 24


@pytest.fixture(autouse=True)
def _fresh(backend, monkeypatch):
    runtime.forget()
    monkeypatch.setattr(personalization.visitor, "schedule_drain", lambda key: None)
    yield
    runtime.forget()


def shown(client) -> str:
    html = client.get("/offers/").content.decode()
    assert (DEFAULT in html) != (VARIANT in html), html
    return VARIANT if VARIANT in html else DEFAULT


def test_create_start_count_read_and_promote():
    home_page()
    segment("engaged")
    page = personalised_page()
    block_id, keys = block_of(page)

    editor = login("editor", *EDITOR_PERMS)
    data = create_data(
        page, [("Standard", "default", 1), ("Engaged offer", keys[1], 1)], minimum_sample="5"
    )
    data["goals-0-match"] = f'{{"block": "{block_id}"}}'
    assert editor.post(reverse("experiments:add"), data).status_code == 302
    exp = Experiment.objects.get()
    runner = login("runner", *EDITOR_PERMS, "experiments.run_experiment")
    runner.post(reverse("experiments:start", args=[exp.pk]))
    exp.refresh_from_db()
    assert exp.status == Experiment.Status.RUNNING

    seen = {DEFAULT: 0, VARIANT: 0}
    for _ in range(VISITORS):
        client = consenting_browser()
        key = ConsentRecord.objects.order_by("-pk").first().visitor_key
        what = shown(client)
        seen[what] += 1
        if what == VARIANT:  # the variant's visitors click the banner, the others do not
            send(key, "click", block=block_id, variant=keys[1], page=page.pk)
        drain(key)
    assert seen[DEFAULT] and seen[VARIANT]  # both arms were served

    everyone = {
        s.arm: s for s in Statistic.objects.filter(experiment=exp, segment="", goal__event="click")
    }
    assert {arm: int(s.n) for arm, s in everyone.items()} == {0: seen[DEFAULT], 1: seen[VARIANT]}
    assert (everyone[0].sum, everyone[1].sum) == (0, seen[VARIANT])

    reader = login("reader", "experiments.view_experiment_results")
    url = reverse("experiments:results", args=[exp.pk])
    export = reader.get(url, {"export": "csv"})
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    visitors = {r["arm_key"]: int(r["visitors"]) for r in rows if r["segment"] == "(all visitors)"}
    assert visitors == {"default": seen[DEFAULT], keys[1]: seen[VARIANT]}

    admin = login("chief", superuser=True)
    response = admin.post(reverse("experiments:promote", args=[exp.pk]), {"arm": "1"})
    assert response.status_code == 302
    runtime.forget()
    assert shown(consenting_browser()) == VARIANT  # the winner is now everyone's content
    exp.refresh_from_db()
    assert exp.status == Experiment.Status.STOPPED and exp.winner.index == 1
