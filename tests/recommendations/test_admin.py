"""The "For you" model screen: versions with their figures and the active one, activation and
rollback that change what the drain builds lists with, training from the admin, permissions,
CSRF, and hostile input answered with a 4xx or a clear message (never a 500)."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from recommendations import api, factorisation, tasks
from recommendations.models import FactorModel
from recommendations.scoring import Recent
from tests.recommendations.helpers import product

pytestmark = [pytest.mark.services, pytest.mark.django_db]
np = pytest.importorskip("numpy")

INDEX = "recommendation_model:index"


def _login(username, *perms, csrf=False) -> Client:
    user = get_user_model().objects.create_user(username, password="x", is_staff=True)
    for dotted in ("wagtailadmin.access_admin", *perms):
        app, codename = dotted.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app, codename=codename)
        )
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def _editor(**kw) -> Client:
    return _login("editor", "recommendations.change_factormodel", **kw)


def _version(item_ids, rows, **kw) -> FactorModel:
    buffer = io.BytesIO()
    np.save(buffer, np.array(rows, dtype=np.float32), allow_pickle=False)
    kw.setdefault("metrics", {"evaluated": 40, "recall_at_10": 0.41, "popular_recall_at_10": 0.18})
    return FactorModel.objects.create(
        item_ids=item_ids, factors=buffer.getvalue(), visitors=40, training_seconds=1.25, **kw
    )


@pytest.fixture
def shop():
    """Three items, and two versions that disagree on what goes with the first: v1 pairs it
    with the second, v2 with the third."""
    api.forget()
    factorisation.forget()
    a, b, c = (product(f"Item {n}", f"I{n}").pk for n in range(3))
    v1 = _version([a, b, c], [[1, 0], [1, 0], [0, 1]])
    v2 = _version([a, b, c], [[1, 0], [0, 1], [1, 0]])
    yield a, b, c, v1, v2
    api.forget()
    factorisation.forget()


def _served(a: int) -> list[int]:
    """What the drain's "for you" builds now for a visitor who looked at item ``a``."""
    return factorisation.for_you({"k": Recent([a])}, exclude_bought=True, length=2).get("k", [])


def test_the_listing_shows_every_version_its_figures_and_the_active_one(shop):
    _a, _b, _c, v1, v2 = shop
    factorisation.activate(v1)
    FactorModel.objects.create(status="failed", note="training failed (MemoryError)")
    client = _login("viewer", "recommendations.view_factormodel")
    body = client.get(reverse(INDEX)).content.decode()
    assert f"v{v1.pk} ✓ active" in body and f"v{v2.pk}" in body
    assert "0.410 (popular 0.180)" in body and "1.2 s" in body and "40 / 3" in body
    assert "training failed (MemoryError)" in body
    # A viewer sees no actions, and none is done for them.
    assert "Train now" not in body and "Activate" not in body.split("</thead>")[1]
    assert client.post(reverse("recommendation_model:activate", args=[v2.pk])).status_code == 403
    assert client.post(reverse("recommendation_model:rollback")).status_code == 403
    assert FactorModel.objects.get(status="active").pk == v1.pk


def test_activate_and_roll_back_change_what_the_drain_builds_lists_with(
    shop, django_capture_on_commit_callbacks
):
    a, b, c, v1, v2 = shop
    client = _editor()
    activate = reverse("recommendation_model:activate", args=[v1.pk])
    confirm = client.get(activate)  # a confirmation page: nothing done yet
    assert confirm.status_code == 200 and 'method="post"' in confirm.content.decode()
    assert not FactorModel.objects.filter(status="active").exists()
    assert _served(a) == []

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(activate, follow=True)
    assert f"v{v1.pk} is now the active" in response.content.decode()
    assert factorisation.active_model()[0] == v1.pk and _served(a)[0] == b

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("recommendation_model:activate", args=[v2.pk]))
    assert factorisation.active_model()[0] == v2.pk and _served(a)[0] == c
    v1.refresh_from_db()
    assert v1.status == "retired" and "editor" in FactorModel.objects.get(pk=v2.pk).note

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("recommendation_model:rollback"), follow=True)
    assert f"Back to v{v1.pk}" in response.content.decode()
    assert factorisation.active_model()[0] == v1.pk and _served(a)[0] == b


def test_hostile_and_impossible_actions_get_a_4xx_or_a_clear_message(shop):
    _a, _b, _c, v1, _v2 = shop
    failed = FactorModel.objects.create(status="failed", note="training failed")
    client = _editor()
    missing = reverse("recommendation_model:activate", args=[failed.pk + 1000])
    assert client.post(missing).status_code == 404
    assert client.get("/admin/recommendation-model/abc/activate/").status_code == 404

    body = client.post(
        reverse("recommendation_model:activate", args=[failed.pk]), follow=True
    ).content.decode()
    assert "Not activated" in body and "failed to train" in body
    body = client.post(reverse("recommendation_model:rollback"), follow=True).content.decode()
    assert "Not rolled back" in body and "no earlier" in body

    factorisation.activate(v1)
    body = client.post(
        reverse("recommendation_model:activate", args=[v1.pk]), follow=True
    ).content.decode()
    assert "already active" in body
    assert not FactorModel.objects.filter(pk=failed.pk, status="active").exists()


def test_actions_need_the_csrf_token_and_the_permission(shop):
    _a, _b, _c, v1, _v2 = shop
    activate = reverse("recommendation_model:activate", args=[v1.pk])
    assert _editor(csrf=True).post(activate).status_code == 403
    nobody = _login("nobody")
    assert nobody.get(reverse(INDEX)).status_code == 403
    assert nobody.get(activate).status_code == 403
    assert nobody.post(activate).status_code == 403
    assert nobody.post(reverse("recommendation_model:train")).status_code == 403
    assert not FactorModel.objects.filter(status="active").exists()


def test_train_now_queues_a_training_and_says_so(shop, monkeypatch):
    queued = []
    monkeypatch.setattr(tasks.train, "delay", lambda: queued.append(1))
    client = _editor()
    body = client.post(reverse("recommendation_model:train"), follow=True).content.decode()
    if not factorisation.available():  # without the [ml] extra: refused, with the reason
        assert queued == [] and "extra (numpy, scipy, implicit) is not installed" in body
        return
    assert queued == [1] and "Training queued" in body

    def down():
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.train, "delay", down)
    response = client.post(reverse("recommendation_model:train"), follow=True)
    assert response.status_code == 200 and "workers cannot be reached" in response.content.decode()


def test_a_failed_training_is_kept_as_a_failed_version(monkeypatch):
    pytest.importorskip("implicit")
    monkeypatch.setattr(factorisation, "_histories", lambda: [[1, 2, 3], [3, 2, 1]])

    def broken(*args):
        raise MemoryError

    monkeypatch.setattr(factorisation, "evaluate", broken)
    version = factorisation.train()
    assert version.status == "failed" and "MemoryError" in version.note
    with pytest.raises(factorisation.ActivationRefused):
        factorisation.activate(version)


def test_the_listing_runs_the_same_queries_for_more_versions(shop):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    a, b, c, v1, _v2 = shop
    factorisation.activate(v1)
    client = _editor()
    client.get(reverse(INDEX))  # the session and the user, read once

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse(INDEX)).status_code == 200
        return len(queries)

    few = count()
    for _ in range(5):
        _version([a, b, c], [[1, 0], [1, 0], [0, 1]])
    assert count() == few
