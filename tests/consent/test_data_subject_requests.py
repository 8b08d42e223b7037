"""Data-subject requests by every identifier a privacy officer may be given (a pseudonymous id,
the cookie's identifier, a CRM customer id, a linked account), from the commands and the
admin, against the real PostgreSQL and Redis."""

import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from consent.identity import external_key, visitor_key
from consent.models import ConsentRecord, ErasureRequest, IdentityLink
from consent.privacy import export_subject, find_subject
from segments.models import LoggedEvent, MembershipChange
from tests.builders import consenting_browser, demo_site, segment

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

COOKIE = "tailored_consent"


@pytest.fixture(autouse=True)
def _site():
    demo_site()


def _key(client) -> str:
    return visitor_key(client.cookies[COOKIE].value.split("|")[1])


def _raw_id(client) -> str:
    return client.cookies[COOKIE].value.split("|")[1]


def _engaged(client) -> str:
    for path in ("/", "/guides/", "/ceramic-mug/"):
        client.get(path)
    return _key(client)


@pytest.fixture
def crm_import(tmp_path, backend):
    """Two customers of the "crm" source imported with consent obtained there."""
    segment("buyer", {"type": "feature", "feature": "purchase_count", "op": "gte", "value": 1})
    path = tmp_path / "crm.csv"
    now = datetime.now(UTC)
    lines = ["customer,at,value"]
    for n, customer in enumerate(["C-1001", "C-1001", "C-2002"]):
        lines.append(f"{customer},{(now - timedelta(hours=n + 1)).isoformat()},{10 + n}")
    path.write_text("\n".join(lines) + "\n")
    call_command(
        "import_events",
        str(path),
        "--visitor",
        "customer",
        "--time",
        "at",
        "--value",
        "value",
        "--source",
        "crm",
        "--assume-consent",
        "--process",
        stdout=io.StringIO(),
    )
    return external_key("crm", "C-1001"), external_key("crm", "C-2002")


def _export(*args) -> dict:
    out = io.StringIO()
    call_command("privacy_export", *args, stdout=out)
    return json.loads(out.getvalue())


# -- a CRM customer ------------------------------------------------------------------------
def test_export_by_import_source_and_customer_id(crm_import):
    customer, _other = crm_import
    data = _export("--source", "crm", "--external-id", " C-1001 ")  # stripped as on import
    assert data["visitor_key"] == [{"visitor_key": customer}]
    assert len(data["segments.events"]) == 2
    assert [c["segment"] for c in data["segments.membership_history"]] == ["buyer"]
    assert data["consent_records"][0]["method"] == "api"


def test_erase_by_import_source_and_customer_id(crm_import, backend):
    customer, other = crm_import
    call_command(
        "privacy_erase", "--source", "crm", "--external-id", "C-1001", stdout=io.StringIO()
    )
    assert not LoggedEvent.objects.filter(visitor_key=customer).exists()
    assert not MembershipChange.objects.filter(visitor_key=customer).exists()
    assert backend.visitor_data(customer).profile is None
    assert ErasureRequest.objects.get(visitor_key=customer).completed_at
    assert LoggedEvent.objects.filter(visitor_key=other).count() == 1  # the other customer stays


def test_an_external_id_needs_its_source():
    with pytest.raises(CommandError, match="source"):
        call_command("privacy_export", "--external-id", "C-1001", stdout=io.StringIO())
    with pytest.raises(CommandError, match="exactly one"):
        call_command(
            "privacy_export", "a" * 32, "--user", "1", stdout=io.StringIO(), stderr=io.StringIO()
        )


def test_the_subject_key_is_the_importers_key():
    assert find_subject(source="crm", external_id="C-1001").keys[0] == external_key("crm", "C-1001")


# -- a linked account ----------------------------------------------------------------------
@pytest.fixture
def linked(backend, django_user_model):
    """Ann logged in from two browsers (two profiles); Bob from one."""
    ann = django_user_model.objects.create_user("ann", password="pw-123456")
    bob = django_user_model.objects.create_user("bob", password="pw-123456")
    keys = {}
    for name, user in (("ann1", ann), ("ann2", ann), ("bob", bob)):
        client = consenting_browser()
        keys[name] = _engaged(client)
        client.post("/admin/login/", {"username": user.username, "password": "pw-123456"})
    assert IdentityLink.objects.count() == 3
    return ann, bob, keys


def test_export_by_linked_account(linked):
    ann, _bob, keys = linked
    for args in (("--user", str(ann.pk)), ("--username", "ann")):
        data = _export(*args)
        assert {r["visitor_key"] for r in data["visitor_key"]} == {keys["ann1"], keys["ann2"]}
        assert {e["visitor_key"] for e in data["segments.events"]} == {keys["ann1"], keys["ann2"]}
        assert keys["bob"] not in json.dumps(data)


def test_erase_by_linked_account(linked):
    _ann, _bob, keys = linked
    call_command("privacy_erase", "--username", "ann", stdout=io.StringIO())
    for key in (keys["ann1"], keys["ann2"]):
        assert not LoggedEvent.objects.filter(visitor_key=key).exists()
        assert ConsentRecord.objects.filter(visitor_key=key).latest("seq").method == "erasure"
    assert not IdentityLink.objects.exclude(visitor_key=keys["bob"]).exists()
    assert LoggedEvent.objects.filter(visitor_key=keys["bob"]).exists()


def test_an_unknown_or_unlinked_account_is_an_error_not_an_empty_answer(django_user_model):
    django_user_model.objects.create_user("carol", password="pw-123456")
    with pytest.raises(CommandError, match="no account"):
        call_command("privacy_export", "--username", "nobody", stdout=io.StringIO())
    with pytest.raises(CommandError, match="No visitor profile"):
        call_command("privacy_erase", "--username", "carol", stdout=io.StringIO())


# -- a cookie identifier after a key rotation ------------------------------------------------
def test_raw_id_finds_data_still_under_an_earlier_hashing_key(backend, settings):
    client = consenting_browser()
    old_key = _engaged(client)
    raw = _raw_id(client)
    settings.CONSENT_CHAIN_KEY = "chain-key-kept-across-rotation-0123456789"
    old_secret = settings.CONSENT_HASH_KEY
    settings.CONSENT_HASH_KEY = "the-new-hash-key-0123456789abcdef0123456789"
    settings.CONSENT_PREVIOUS_HASH_KEYS = [old_secret]
    # The visitor has not come back since the rotation: their data is under the old key.
    data = _export(raw, "--raw")
    assert old_key in {r["visitor_key"] for r in data["visitor_key"]}
    assert len(data["segments.events"]) == 3
    call_command("privacy_erase", raw, "--raw", stdout=io.StringIO())
    assert not LoggedEvent.objects.filter(visitor_key=old_key).exists()


# -- the admin ------------------------------------------------------------------------------
@pytest.fixture
def officer(django_user_model):
    from django.test import Client

    user = django_user_model.objects.create_superuser("officer", "o@example.com", "pw-123456")
    client = Client()
    client.force_login(user)
    return client


def test_the_admin_exports_by_customer_id(officer, crm_import):
    customer, _other = crm_import
    response = officer.post(
        reverse("consent_privacy:requests_export"),
        {"id_kind": "external", "source": "crm", "visitor_key": "C-1001", "format": "json"},
    )
    assert response.status_code == 200
    data = json.loads(response.content)
    assert data["visitor_key"] == [{"visitor_key": customer}]
    assert len(data["segments.events"]) == 2


def test_the_admin_erases_by_username_without_putting_it_in_a_url(officer, linked):
    _ann, _bob, keys = linked
    url = reverse("consent_privacy:requests_erase")
    page = officer.get(reverse("consent_privacy:requests")).content.decode()
    assert 'method="post" action="' + url in page  # the erase form does not GET
    form = {"id_kind": "username", "visitor_key": "ann", "source": ""}
    confirm = officer.post(url, {**form, "preview": "1"})
    assert confirm.status_code == 200 and "Yes, erase" in confirm.content.decode()
    assert confirm.context["held"]["segments.events"] == 6
    assert LoggedEvent.objects.filter(visitor_key=keys["ann1"]).exists()  # not yet
    response = officer.post(url, form)
    assert response.status_code == 302
    assert not LoggedEvent.objects.filter(visitor_key__in=[keys["ann1"], keys["ann2"]]).exists()
    assert LoggedEvent.objects.filter(visitor_key=keys["bob"]).exists()
    from wagtail.models import ModelLogEntry

    (entry,) = ModelLogEntry.objects.filter(action="consent.erase")
    assert entry.data["by"] == "username" and entry.data["keys"] == 2
    # The kind of identifier, never its value (the names of the apps that erased are there).
    assert not re.search(r"\bann\b", json.dumps(entry.data))


def test_the_admin_refuses_a_customer_id_without_source_and_an_unknown_account(officer):
    url = reverse("consent_privacy:requests_export")
    response = officer.post(url, {"id_kind": "external", "visitor_key": "C-1", "format": "json"})
    assert response.status_code == 200 and response.context["form"].errors["source"]
    response = officer.post(url, {"id_kind": "username", "visitor_key": "x", "format": "json"})
    assert response.status_code == 200 and response.context["form"].errors["visitor_key"]


def test_export_subject_of_one_key_is_the_plain_export(backend):
    client = consenting_browser()
    key = _engaged(client)
    data = export_subject(find_subject(key=key.upper()))
    assert data["visitor_key"] == [{"visitor_key": key}]
    assert "visitor_key" not in data["segments.events"][0]
