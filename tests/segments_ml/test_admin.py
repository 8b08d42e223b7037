"""The editor's Models screens: permissions (view vs change), POST-only actions with CSRF,
charts, warnings and escaping."""

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from segments_ml import versions as registry
from segments_ml.models import MLModel, ModelVersion
from segments_ml.training import train_version
from tests.segments_ml.builders import customers, store

pytestmark = [pytest.mark.services, pytest.mark.django_db]

XSS = '"><script>alert(1)</script>'


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


@pytest.fixture
def model():
    store(customers(50, 80, time.time() - 3600, seed=5))
    m = MLModel.objects.create(
        name="Buys again",
        slug="buys-again",
        kind="propensity",
        target={"event": "purchase", "horizon_days": 30},
        population_event="purchase",
    )
    version = train_version(registry.new_version(m).pk)
    assert version.status == "ready", version.error
    return m


def urls(m: MLModel) -> dict[str, str]:
    return {
        "detail": reverse("ml_models:detail", args=[m.pk]),
        "train": reverse("ml_models:train", args=[m.pk]),
        "rollback": reverse("ml_models:rollback", args=[m.pk]),
        "activate": reverse("ml_models:activate", args=[m.versions.get(number=1).pk]),
    }


def test_without_the_permission_everything_is_refused(model):
    client = _login("nobody")
    u = urls(model)
    assert client.get(u["detail"]).status_code == 403
    for name in ("train", "rollback", "activate"):
        assert client.post(u[name]).status_code == 403
    assert not model.versions.filter(is_active=True).exists()
    assert client.get(reverse("ml_models:index")).status_code in (302, 403)


def test_viewers_see_versions_and_charts_but_cannot_act(model):
    client = _login("viewer", "segments_ml.view_mlmodel")
    u = urls(model)
    page = client.get(u["detail"])
    assert page.status_code == 200
    body = page.content.decode()
    assert "ROC curve on held-out time" in body and "Lift by decile" in body
    assert "Calibration on held-out time" in body and "<svg" in body
    assert "Train now" not in body
    assert client.post(u["train"]).status_code == 403
    assert client.post(u["activate"]).status_code == 403
    assert model.versions.count() == 1
    assert client.get(reverse("ml_models:index")).status_code == 200


def test_editors_train_activate_and_roll_back(model, django_capture_on_commit_callbacks):
    client = _login("editor", "segments_ml.view_mlmodel", "segments_ml.change_mlmodel")
    u = urls(model)
    assert client.get(u["train"]).status_code == 405  # actions are POST only
    assert client.post(u["activate"]).status_code == 302
    assert model.active_version.number == 1
    with django_capture_on_commit_callbacks(execute=False) as sent:
        client.post(u["train"])
    assert len(sent) == 1 and model.versions.get(number=2).status == "queued"
    assert "Training v2 in a worker" in client.get(u["detail"]).content.decode()

    v2 = train_version(model.versions.get(number=2).pk)
    response = client.post(reverse("ml_models:activate", args=[v2.pk]), follow=True)
    assert model.active_version == v2, response.content.decode()[-2000:]
    response = client.post(u["rollback"], follow=True)
    assert "Back to v1" in response.content.decode()
    assert model.active_version.number == 1
    log = list(model.activations.values_list("action", "by"))
    assert log[0] == ("rollback", "editor") and ("activate", "editor") in log


def test_a_worse_version_needs_an_explicit_override(model):
    client = _login("editor", "segments_ml.change_mlmodel")
    registry.activate(model.versions.get(number=1))
    v2 = train_version(registry.new_version(model).pk)
    v2.metrics = {**v2.metrics, "roc_auc": 0.5}
    v2.save()
    activate = reverse("ml_models:activate", args=[v2.pk])
    body = client.post(activate, follow=True).content.decode()
    assert "Not activated" in body and "worse than the active v1" in body
    assert "Activate anyway" in body
    assert model.active_version.number == 1
    client.post(activate, {"override": "1"})
    assert model.active_version == v2
    assert model.activations.first().override


def test_csrf_is_required_for_actions(model):
    client = _login("editor", "segments_ml.change_mlmodel", csrf=True)
    assert client.post(urls(model)["activate"]).status_code == 403
    assert not model.versions.filter(is_active=True).exists()


def test_weak_models_and_small_clusters_are_flagged_and_names_escaped(model):
    client = _login("viewer", "segments_ml.view_mlmodel")
    version = model.versions.get()
    version.metrics = {**version.metrics, "roc_auc": 0.55}
    version.save()
    assert "Weak model: ROC AUC 0.550" in client.get(urls(model)["detail"]).content.decode()

    clusters = MLModel.objects.create(name=XSS, slug="rfm", kind="clustering")
    ModelVersion.objects.create(
        model=clusters,
        number=1,
        status="ready",
        metrics={"silhouette": 0.4, "k": 2},
        details={
            "clusters": [
                {
                    "key": "big",
                    "name": XSS,
                    "size": 990,
                    "share": 0.99,
                    "description": [XSS],
                    "median": {},
                    "name_reason": "last purchase 491 days ago (over 180: lapsed)",
                    "renamed_from": XSS,
                },
                {
                    "key": "tiny",
                    "name": "tiny",
                    "size": 10,
                    "share": 0.01,
                    "description": [],
                    "median": {},
                },
            ]
        },
    )
    body = client.get(reverse("ml_models:detail", args=[clusters.pk])).content.decode()
    assert "Cluster tiny is too small to act on" in body
    assert "Cluster sizes" in body
    assert XSS not in body and "&lt;script&gt;" in body
    assert "named for: last purchase 491 days ago (over 180: lapsed)" in body


# -- query counts --------------------------------------------------------------------------
METRICS = {
    "roc_auc": 0.71,
    "pr_auc": 0.4,
    "lift_top_decile": 2.1,
    "roc_curve": [[0, 0], [0.2, 0.5], [1, 1]],
    "lift_by_decile": [2.1, 1.5, 1.2, 1, 0.9, 0.8, 0.7, 0.6, 0.6, 0.5],
    "calibration": [[0.1, 0.12, 40], [0.5, 0.45, 30]],
}


def _propensity(slug: str) -> MLModel:
    return MLModel.objects.create(
        name=slug.title(),
        slug=slug,
        kind="propensity",
        target={"event": "purchase", "horizon_days": 30},
        population_event="purchase",
    )


def test_the_model_listing_runs_the_same_queries_for_more_models():
    from tests.support.query_counts import assert_queries_do_not_grow

    client = _login("viewer", "segments_ml.view_mlmodel")

    def build(n):
        for _ in range(n):
            m = _propensity(f"model-{MLModel.objects.count()}")
            ModelVersion.objects.create(
                model=m, number=1, status="ready", is_active=True, metrics=METRICS
            )

    assert_queries_do_not_grow(client, reverse("ml_models:index"), build)
    page = client.get(reverse("ml_models:index")).content.decode()
    assert page.count("v1 (roc_auc 0.710)") == 12  # every row shows its active version


def test_a_model_page_runs_the_same_queries_for_more_versions_and_checks():
    from segments_ml.models import DriftCheck
    from tests.support.query_counts import assert_queries_do_not_grow

    client = _login("viewer", "segments_ml.view_mlmodel")
    m = _propensity("buys-again")
    active = ModelVersion.objects.create(
        model=m, number=1, status="ready", is_active=True, metrics=METRICS
    )

    def build(n):
        for _ in range(n):
            ModelVersion.objects.create(
                model=m,
                number=m.versions.count() + 1,
                status="ready",
                metrics=METRICS,
                comparison={"version": active.pk, "number": 1, "metrics": {"roc_auc": 0.7}},
            )
            DriftCheck.objects.create(version=active, max_psi=0.05, threshold=0.2)

    assert_queries_do_not_grow(client, reverse("ml_models:detail", args=[m.pk]), build)
    page = client.get(reverse("ml_models:detail", args=[m.pk])).content.decode()
    assert "Drift over time" in page and page.count("Activate anyway") == 0
