"""Experiment results over REST: 401 without credentials (or with a bad token), 403 without the
permission, 200 with the same figures as experiments.results, 404 for an unknown id; in the
admin's session or headless with a DRF token, the permission checked per experiment."""

import pytest
from django.test import Client

from experiments.models import Experiment
from experiments.snapshots import snapshot_experiment
from tests.cms_blocks.helpers import login, user

from .helpers import conversions, experiment, statistic

pytestmark = pytest.mark.django_db


@pytest.fixture
def exp():
    e = experiment(minimum_sample=10, status=Experiment.Status.RUNNING)
    statistic(e, 0, conversions(1000, 100))
    statistic(e, 1, conversions(1000, 200))
    snapshot_experiment(e)
    return e


def test_refused_without_the_permission(exp):
    url = f"/api/experiments/{exp.pk}/results/"
    anonymous = Client().get(url)
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Token"
    assert login("editor", "experiments.change_experiment").get(url).status_code == 403
    assert (
        login("editor2", "experiments.change_experiment").get("/api/experiments/").status_code
        == 403
    )


@pytest.mark.parametrize(
    "perm", ["experiments.view_experiment_results", "experiments.run_experiment"]
)
def test_results_with_the_permission(exp, perm):
    client = login("reader", perm)
    response = client.get(f"/api/experiments/{exp.pk}/results/?history=1")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    data = response.json()
    assert data["experiment"] == exp.pk and data["verdict"] == "winner"
    b = next(c for c in data["cells"] if c["arm"] == 1 and c["segment"] == "")
    assert b["lift"] == pytest.approx(1.0)
    assert len(data["history"]) == 1
    listed = client.get("/api/experiments/").json()["experiments"]
    assert [e["key"] for e in listed] == [exp.key]


def test_unknown_experiment_is_404():
    client = login("reader", "experiments.view_experiment_results")
    assert client.get("/api/experiments/999999/results/").status_code == 404


@pytest.mark.parametrize("pk", ["abc", "1.5", "\uff19", "1" * 30])
def test_what_is_not_an_id_is_a_json_404(pk):
    client = login("reader", "experiments.view_experiment_results")
    response = client.get(f"/api/experiments/{pk}/results/")
    assert response.status_code == 404
    assert response.json() == {"error": "No such experiment."}


# -- headless: DRF tokens ---------------------------------------------------------------------
def token_client(key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {key}")


def token_of(username: str, *perms: str, **fields) -> str:
    from rest_framework.authtoken.models import Token

    account = user(username, *perms)
    for name, value in fields.items():
        setattr(account, name, value)
    account.save()
    return Token.objects.create(user=account).key


def test_a_token_with_the_permission_reads_results_headless(exp):
    client = token_client(token_of("dashboard", "experiments.view_experiment_results"))
    response = client.get(f"/api/experiments/{exp.pk}/results/?history=1")
    assert response.status_code == 200 and "sessionid" not in response.cookies
    assert response["Cache-Control"] == "no-store"
    assert response.json()["verdict"] == "winner" and len(response.json()["history"]) == 1
    assert [e["id"] for e in client.get("/api/experiments/").json()["experiments"]] == [exp.pk]


def test_a_token_without_the_permission_is_403_before_any_404(exp):
    client = token_client(token_of("nosy", "experiments.change_experiment"))
    for url in (f"/api/experiments/{exp.pk}/results/", "/api/experiments/999999/results/"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert response.json() == {"error": "You need the permission to view experiment results."}
    assert client.get("/api/experiments/").status_code == 403


@pytest.mark.parametrize(
    "header",
    [
        "Token " + "0" * 40,  # well-formed, no such token
        "Token " + "z" * 40,
        "Token abc\x00def",
        "Token " + "a" * 5000,
        "Token",
        "Token a b",
        "Token \u00e9\u00e9",
    ],
)
def test_a_bad_token_is_401_never_500(exp, header):
    response = Client(HTTP_AUTHORIZATION=header).get(f"/api/experiments/{exp.pk}/results/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token" and "error" in response.json()


def test_the_token_of_an_inactive_user_is_401(exp):
    key = token_of("gone", "experiments.view_experiment_results", is_active=False)
    assert token_client(key).get(f"/api/experiments/{exp.pk}/results/").status_code == 401


def test_without_the_authtoken_app_tokens_are_not_read(exp, monkeypatch):
    from experiments.rest import views

    key = token_of("dashboard", "experiments.view_experiment_results")
    monkeypatch.setattr(views, "tokens_enabled", lambda: False)
    assert token_client(key).get(f"/api/experiments/{exp.pk}/results/").status_code == 403


class OneExperimentBackend:
    """An object-permission backend (django-guardian's kind): user "partner" may read the
    results of the experiment keyed "shared" and of no other."""

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj, perm, obj=None):
        return (
            user_obj.username == "partner"
            and perm == "experiments.view_experiment_results"
            and isinstance(obj, Experiment)
            and obj.key == "shared"
        )


def test_the_permission_is_checked_per_experiment(exp, settings):
    settings.AUTHENTICATION_BACKENDS = [
        *settings.AUTHENTICATION_BACKENDS,
        f"{__name__}.OneExperimentBackend",
    ]
    shared = experiment("shared", minimum_sample=10, status=Experiment.Status.RUNNING)
    client = token_client(token_of("partner"))
    assert client.get(f"/api/experiments/{shared.pk}/results/").status_code == 200
    assert client.get(f"/api/experiments/{exp.pk}/results/").status_code == 403
    listed = client.get("/api/experiments/").json()["experiments"]
    assert [e["key"] for e in listed] == ["shared"]
