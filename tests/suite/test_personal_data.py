"""Every table that holds rows under a visitor's key takes part in every data-subject and
retention mechanism: export, erasure, re-keying after a key rotation, and retention. The test
enumerates the installed models, so a new table cannot be forgotten: it fails until the table
has a builder here and the app registers handlers that cover it (consent/registry.py)."""

import time
from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone

from consent.actions import rekey
from consent.log import Grants, append_record
from consent.models import ConsentRecord, ErasureRequest, IdentityLink
from consent.privacy import erase_visitor, export_visitor, run_retention
from experiments.models import Arm, Assignment, Experiment
from segments.models import (
    LoggedEvent,
    MembershipChange,
    PendingConsentMirror,
    Segment,
    StaticMember,
)

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# Field names that hold a visitor's pseudonymous key (or another keyed hash of a person).
KEY_FIELDS = {"visitor_key", "user_key", "subject_key"}

ALL = frozenset({"personalization", "analytics", "marketing"})


def _consent(key):
    append_record(key, granted=ALL, denied=frozenset(), method="api")


def _erasure(key):
    now = timezone.now()
    ErasureRequest.objects.create(
        visitor_key=key, reason="request", due_at=now, completed_at=now, result={"x": 1}
    )


def _link(key):
    IdentityLink.objects.create(user_key="u" + key[1:], visitor_key=key)


def _event(key):
    LoggedEvent.objects.create(
        event_id=f"{key[:24]}{int(time.time() * 1e6) % 10**8:08d}",
        visitor_key=key,
        name="page_view",
        occurred_at=timezone.now(),
        properties={"path": "/"},
    )


def _change(key):
    MembershipChange.objects.create(
        visitor_key=key, segment="engaged", entered=True, at=timezone.now(), reason="test"
    )


def _outbox(key):
    PendingConsentMirror.objects.create(visitor_key=key, queued_at=timezone.now())


def _static_member(key):
    segment, _ = Segment.objects.get_or_create(
        slug="static-test",
        defaults={"name": "Static", "rule": {"type": "event_count", "event": "x", "window": "1d"}},
    )
    StaticMember.objects.create(segment=segment, visitor_key=key, added_at=timezone.now())


def _assignment(key):
    experiment, _ = Experiment.objects.get_or_create(
        key="privacy-test", defaults={"name": "Privacy", "kind": Experiment.Kind.BLOCK}
    )
    Arm.objects.get_or_create(experiment=experiment, index=0, defaults={"name": "A"})
    now = timezone.now()
    Assignment.objects.create(
        experiment=experiment,
        visitor_key=key,
        arm=0,
        probability=0.5,
        first_exposed_at=now,
        last_exposed_at=now,
    )


def _audience(key):
    from tailored_channels.models import AudienceMember

    AudienceMember.objects.create(
        destination=_destination(),
        visitor_key=key,
        segment="engaged",
        identifier="x" * 32,
        changed_at=timezone.now(),
    )


def _destination():
    from tailored_channels.models import Destination

    destination, _ = Destination.objects.get_or_create(
        name="Personal data", defaults={"url": "http://127.0.0.1:9/", "purpose": "marketing"}
    )
    return destination


def _propagation(key):
    from tailored_channels.models import Propagation

    Propagation.objects.create(
        destination=_destination(), visitor_key=key, reason="erased", done_at=timezone.now()
    )


def _follow_up(key):
    from tailored_channels.models import FollowUp, Trigger

    trigger, _ = Trigger.objects.get_or_create(
        name="Personal data", defaults={"segment": "engaged", "destination": _destination()}
    )
    now = timezone.now()
    FollowUp.objects.create(trigger=trigger, visitor_key=key, entered_at=now, due_at=now)


# One builder per table holding visitor keys: a row for the given key, dated now.
BUILDERS = {
    "consent.ConsentRecord": _consent,
    "consent.ErasureRequest": _erasure,
    "consent.IdentityLink": _link,
    "experiments.Assignment": _assignment,
    "segments.LoggedEvent": _event,
    "segments.MembershipChange": _change,
    "segments.PendingConsentMirror": _outbox,
    "segments.StaticMember": _static_member,
    "tailored_channels.AudienceMember": _audience,
    "tailored_channels.Propagation": _propagation,
    "tailored_channels.FollowUp": _follow_up,
}

# What a table deliberately keeps, and why (docs/privacy.md says the same).
KEPT = {
    ("consent.ConsentRecord", "erasure"): "proof of consent and of the erasure (Art. 7(1))",
    ("consent.ErasureRequest", "erasure"): "the minimal record that the erasure was done",
    ("consent.ConsentRecord", "rekey"): "append-only: a key_rotation record is added instead",
    ("tailored_channels.Propagation", "erasure"): "proof that the erasure reached each destination",
}


# Tables whose rows are removed once their work is done (an outbox): after a re-key none is left
# under the old key, and the new key's row is gone as soon as the store holds its state.
TRANSIENT = {"segments.PendingConsentMirror"}


def _keyed_models():
    return {
        model._meta.label: model
        for model in apps.get_models()
        if any(f.name in KEY_FIELDS for f in model._meta.get_fields())
    }


def _rows(model, key) -> int:
    return model.objects.filter(visitor_key=key).count()


def _key(n: int) -> str:
    return f"{n:02d}" + "a" * 30


def test_every_table_holding_visitor_keys_has_a_builder_here():
    missing = set(_keyed_models()) - set(BUILDERS)
    assert not missing, (
        f"{sorted(missing)} hold visitor keys: register export, erasure, re-key and retention "
        "handlers for them (consent/registry.py), add them to docs/privacy.md, and a builder "
        "in this test."
    )


@pytest.mark.parametrize("label", sorted(BUILDERS))
def test_every_such_table_is_exported(label, backend):
    key = _key(1)
    BUILDERS[label](key)
    data = export_visitor(key)
    assert sum(len(rows) for table, rows in data.items() if table != "visitor_key") >= 1, label


@pytest.mark.parametrize("label", sorted(BUILDERS))
def test_every_such_table_is_erased(label, backend):
    model = _keyed_models()[label]
    key = _key(2)
    BUILDERS[label](key)
    erase_visitor(key)
    if (label, "erasure") in KEPT:
        assert _rows(model, key) >= 1
    else:
        assert _rows(model, key) == 0, label


@pytest.mark.parametrize("label", sorted(BUILDERS))
def test_every_such_table_is_rekeyed(label, backend):
    model = _keyed_models()[label]
    old, new = _key(3), _key(4)
    BUILDERS[label](old)
    before = _rows(model, old)
    rekey(old, new, Grants(ALL, "1", time.time() + 3600, "void"))
    if (label, "rekey") in KEPT:
        assert _rows(model, old) == before
    elif label in TRANSIENT:
        assert _rows(model, old) == 0, label
    else:
        assert _rows(model, old) == 0 and _rows(model, new) >= before, label


@pytest.mark.parametrize("label", sorted(BUILDERS))
def test_every_such_table_is_purged_by_retention(label, backend):
    model = _keyed_models()[label]
    key = _key(5)
    BUILDERS[label](key)
    _consent(_key(6))  # the chain's newest record stays, to anchor it: another visitor's
    run_retention(now=timezone.now() + timedelta(days=7 * 365))
    assert _rows(model, key) == 0, label


def test_the_membership_history_is_exported_erased_rekeyed_and_purged(backend):
    """The history of segment entries and exits is personal data like the events."""
    key, new = _key(7), _key(8)
    _change(key)
    assert export_visitor(key)["segments.membership_history"][0]["segment"] == "engaged"
    rekey(key, new, Grants(ALL, "1", time.time() + 3600, "void"))
    assert MembershipChange.objects.get().visitor_key == new
    erase_visitor(new)
    assert not MembershipChange.objects.exists()
    _change(key)
    MembershipChange.objects.update(at=timezone.now() - timedelta(days=400))
    assert run_retention()["segments.membership_history"] == 1


def test_consent_records_stay_only_when_kept_on_purpose():
    assert {label for label, _ in KEPT} <= set(BUILDERS)
    assert ConsentRecord in _keyed_models().values()
