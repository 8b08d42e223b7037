"""The "for you" factorisation model: trained by its job on the consented durable log,
evaluated against popular, activated, used by the drain, rolled back."""

import pytest

from consent.log import append_records
from consent.models import ConsentRecord
from recommendations import api, factorisation
from recommendations.models import FactorModel
from recommendations.scoring import Recent
from segments.api import get_backend
from tests.experiments.engine import consented, drain, send
from tests.recommendations.helpers import product

pytestmark = [pytest.mark.services, pytest.mark.django_db]
pytest.importorskip("implicit")


@pytest.fixture(autouse=True)
def _fresh(backend):
    api.forget()
    factorisation.forget()
    yield
    api.forget()
    factorisation.forget()


def _visit(groups, per_group=8):
    keys = []
    for g, pages in enumerate(groups):
        for n in range(per_group):
            key = consented(f"mf-{g}-{n}")
            keys.append(key)
            for page in pages[n % 2 :] + pages[: n % 2]:  # each visitor in their own order
                send(key, page=page.pk)
    append_records(
        keys,
        granted=frozenset({"personalization"}),
        denied=frozenset(),
        method=ConsentRecord.Method.API,
    )
    partitions = {}
    for key in keys:
        partitions.setdefault(get_backend().partition_for(key), key)
    for key in partitions.values():
        drain(key)
    return keys


def test_trained_evaluated_activated_used_by_the_drain_and_rolled_back():
    # 4 groups of 4 items (more than the 10 evaluated): each group's visitors take its items
    groups = [
        [product(f"{name} {n}", f"{name[0]}{n}", name) for n in range(4)]
        for name in ("kitchen", "garden", "bath", "office")
    ]
    kitchen = groups[0]
    _visit(groups)

    first = factorisation.train()
    assert first is not None and first.visitors == 32
    assert first.metrics["evaluated"] == 32
    assert first.metrics["recall_at_10"] > first.metrics["popular_recall_at_10"]
    first.refresh_from_db()
    assert first.status == FactorModel.Status.ACTIVE  # it beat popular

    # Other processes see the new active version within RECOMMENDATIONS_CACHE_SECONDS.
    factorisation.forget()
    # A new visitor who looked at a kitchen item gets the other kitchen items first.
    key = consented("mf-new")
    send(key, page=kitchen[0].pk)
    drain(key)
    mine = [int(i) for i in get_backend().visitor_data(key).fields["r:fy"].split(",")]
    assert set(mine[:3]) == {kitchen[1].pk, kitchen[2].pk, kitchen[3].pk}
    modelled = factorisation.for_you({key: Recent([kitchen[0].pk])}, exclude_bought=True, length=20)
    assert modelled[key] == mine  # the model's list, not co-occurrence

    second = factorisation.train()
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.status == FactorModel.Status.ACTIVE and first.status == "retired"
    assert factorisation.rollback().pk == first.pk
    second.refresh_from_db()
    assert second.status == "retired"
    assert FactorModel.objects.filter(status="active").get().pk == first.pk
    factorisation.deactivate()
    assert not FactorModel.objects.filter(status="active").exists()


def test_nothing_to_train_on_gives_no_version():
    product("Lonely")
    assert factorisation.train() is None
    assert not FactorModel.objects.exists()


def _groups_histories(groups=4, size=4, per_group=8):
    """Each visitor takes all their group's items, a different one last (the one held out)."""
    histories = []
    for g in range(groups):
        items = [1000 + g * size + n for n in range(size)]
        for n in range(per_group):
            last = items[n % size]
            histories.append([*(i for i in items if i != last), last])
    return histories, sorted({i for h in histories for i in h})


def test_a_small_catalogue_model_finds_every_held_out_item_of_its_group():
    # 16 items: 15 factors (the old count) reproduced each visitor's own items and ranked the
    # rest by noise (recall 0.875 here, as low as popular's in CI); a quarter of the smaller side
    # gives the groups' structure.
    histories, items = _groups_histories()
    assert factorisation.factor_count(len(histories), len(items)) == 4
    assert factorisation.factor_count(100_000, 4_000) == factorisation.FACTORS
    metrics = factorisation.evaluate(histories, items)
    assert metrics["evaluated"] == 32
    assert metrics["recall_at_10"] == 1.0 > metrics["popular_recall_at_10"]


def test_a_diverged_fit_is_kept_as_a_failed_version_never_activated(monkeypatch):
    import numpy as np
    from implicit.cpu.als import AlternatingLeastSquares

    groups = [[product(f"item {g} {n}", f"d{g}{n}", "diverge") for n in range(3)] for g in range(2)]
    _visit(groups, per_group=4)
    fit = AlternatingLeastSquares.fit

    def diverging(self, *args, **kwargs):  # the library's fit, then one factor overflows
        fit(self, *args, **kwargs)
        self.item_factors[0, 0] = np.nan

    monkeypatch.setattr(AlternatingLeastSquares, "fit", diverging)
    version = factorisation.train()
    assert version.status == FactorModel.Status.FAILED
    assert "FloatingPointError" in version.note
    assert not FactorModel.objects.filter(status="active").exists()
