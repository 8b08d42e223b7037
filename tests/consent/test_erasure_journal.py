"""The erasure journal, and erasures applied again after the database is restored from a
backup taken before them: a real pg_dump and pg_restore of the test database, the real
Redis."""

import io
import json
import shutil
import subprocess

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections

from consent.identity import visitor_key
from consent.models import ConsentRecord, ErasureRequest
from consent.privacy import erase_visitor, export_visitor, replay_erasures, verify_log
from segments.backends.base import CONSENT_PREFIX, SEGMENT_PREFIX
from segments.models import LoggedEvent, MembershipChange
from tests.builders import consenting_browser, demo_site

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

COOKIE = "tailored_consent"


@pytest.fixture(autouse=True)
def _site():
    demo_site()


@pytest.fixture(autouse=True)
def journal_dir(tmp_path, settings):
    """The journal in its own storage, as docs/privacy.md recommends."""
    folder = tmp_path / "journal"
    settings.STORAGES = {
        **settings.STORAGES,
        "erasure_journal": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(folder)},
        },
    }
    settings.CONSENT_ERASURE_JOURNAL_STORAGE = "erasure_journal"
    return folder


def _visitor():
    client = consenting_browser()
    for path in ("/", "/guides/", "/ceramic-mug/"):
        client.get(path)
    raw = client.cookies[COOKIE].value.split("|")[1]
    return client, raw, visitor_key(raw)


def _entries(folder) -> list:
    return sorted(folder.rglob("*.json"))


def test_each_erasure_is_journalled_with_keyed_hashes_only(backend, journal_dir):
    _client, raw, key = _visitor()
    erase_visitor(key)
    (entry,) = _entries(journal_dir)
    body = json.loads(entry.read_text())
    assert body["visitor_key"] == key and body["purposes"] == [] and body["reason"] == "request"
    text = entry.read_text()
    assert raw not in text  # never the cookie's identifier
    assert set(body) == {
        "v",
        "id",
        "visitor_key",
        "purposes",
        "reason",
        "requested_at",
        "completed_at",
        "mac",
    }


def test_an_erasure_whose_journal_cannot_be_written_stays_pending(backend, settings):
    """No completed erasure is missing from the journal: it is retried instead."""
    _client, _raw, key = _visitor()
    settings.CONSENT_ERASURE_JOURNAL_STORAGE = "no-such-storage"
    with pytest.raises(Exception):  # noqa: B017  (the storage handler's own error)
        erase_visitor(key)
    request = ErasureRequest.objects.get(visitor_key=key)
    assert request.completed_at is None  # the beat sweep (run_due_erasures) retries it


def test_replaying_without_a_restore_changes_nothing(backend):
    _client, _raw, key = _visitor()
    erase_visitor(key)
    records = ConsentRecord.objects.count()
    result = replay_erasures()
    assert (result.entries, result.replayed, result.already_applied) == (1, 0, 1)
    assert ConsentRecord.objects.count() == records


def test_an_altered_journal_entry_is_refused(backend, journal_dir):
    _client, _raw, key = _visitor()
    _other_client, _other_raw, other = _visitor()
    erase_visitor(key)
    (entry,) = _entries(journal_dir)
    body = json.loads(entry.read_text())
    body["visitor_key"] = other  # someone tries to have another visitor erased
    entry.write_text(json.dumps(body))
    with pytest.raises(CommandError, match="refused"):
        call_command("privacy_replay_erasures", stdout=io.StringIO(), stderr=io.StringIO())
    assert LoggedEvent.objects.filter(visitor_key=other).exists()


def _dump(path) -> None:
    connections.close_all()
    subprocess.run(
        [
            "pg_dump",
            "--format=custom",
            "--no-owner",
            f"--file={path}",
            *_connection_args(),
        ],
        check=True,
    )


def _restore(path) -> None:
    connections.close_all()
    subprocess.run(
        [
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            *_connection_args(),
            str(path),
        ],
        check=True,
    )


def _connection_args() -> list[str]:
    db = connection.settings_dict
    args = [f"--dbname={db['NAME']}", f"--host={db['HOST'] or '127.0.0.1'}"]
    if db["PORT"]:
        args.append(f"--port={db['PORT']}")
    if db["USER"]:
        args.append(f"--username={db['USER']}")
    return args


@pytest.mark.skipif(not shutil.which("pg_dump"), reason="pg_dump and pg_restore not installed")
def test_erasures_are_applied_again_after_restoring_a_backup_taken_before_them(backend, tmp_path):
    client, _raw, key = _visitor()
    _other_client, _other_raw, other = _visitor()
    assert MembershipChange.objects.filter(visitor_key=key).exists()
    backup = tmp_path / "backup.dump"
    _dump(backup)  # the nightly backup

    erase_visitor(key)  # the visitor's erasure, after the backup
    assert not LoggedEvent.objects.filter(visitor_key=key).exists()

    _restore(backup)  # the database is restored from last night's backup...
    assert LoggedEvent.objects.filter(visitor_key=key).count() == 3  # ...and the data is back
    assert not ErasureRequest.objects.filter(visitor_key=key).exists()
    # Say the fast store was lost too, and rebuilt from the restored database:
    call_command("rebuild_fast_store", stdout=io.StringIO())
    assert backend.visitor_data(key).profile is not None

    out = io.StringIO()
    call_command("privacy_replay_erasures", stdout=out)
    assert "1 applied again" in out.getvalue()

    # Gone again everywhere: PostgreSQL...
    assert not LoggedEvent.objects.filter(visitor_key=key).exists()
    assert not MembershipChange.objects.filter(visitor_key=key).exists()
    latest = ConsentRecord.objects.filter(visitor_key=key).latest("seq")
    assert latest.method == "erasure" and latest.granted == []
    assert ErasureRequest.objects.get(visitor_key=key).completed_at
    assert verify_log()[1] == []
    # ...and Redis: no features, no memberships, consent not mirrored as granted.
    state = backend.visitor_data(key)
    assert state.profile is None
    assert not any(f.startswith(SEGMENT_PREFIX) for f in state.fields)
    assert CONSENT_PREFIX + "personalization" not in state.fields
    data = export_visitor(key)
    assert data["segments.events"] == data["segments.membership_history"] == []
    assert data["segments.features"] == data["segments.segments"] == []
    # Events arriving later from the visitor's browser are dropped.
    client.get("/guides/")
    assert not LoggedEvent.objects.filter(visitor_key=key).exists()
    # The other visitor is untouched, and a second replay does nothing.
    assert LoggedEvent.objects.filter(visitor_key=other).count() == 3
    assert backend.visitor_data(other).profile is not None
    assert replay_erasures().replayed == 0


def test_replay_since_leaves_out_older_entries(backend):
    from datetime import timedelta

    from django.utils import timezone

    _client, _raw, key = _visitor()
    erase_visitor(key)
    later = timezone.now() + timedelta(minutes=1)
    assert replay_erasures(since=later).entries == 0
    out = io.StringIO()
    call_command("privacy_replay_erasures", "--since", "2000-01-01", stdout=out)
    assert out.getvalue().startswith("1 journalled erasures")
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("privacy_replay_erasures", "--since", "yesterday", stdout=io.StringIO())


@pytest.mark.skipif(not shutil.which("pg_dump"), reason="pg_dump and pg_restore not installed")
def test_a_withdrawals_erasure_is_applied_again_with_its_purposes_only(backend, tmp_path, settings):
    from datetime import timedelta

    from django.utils import timezone

    from consent.privacy import run_due_erasures

    settings.CONSENT_WITHDRAWAL_ERASURE_DELAY = 0
    client, _raw, key = _visitor()
    backup = tmp_path / "backup.dump"
    _dump(backup)
    client.post("/consent/", {"action": "custom", "purposes": ["analytics"]})
    run_due_erasures(now=timezone.now() + timedelta(seconds=1))
    assert not LoggedEvent.objects.filter(visitor_key=key).exists()

    _restore(backup)
    assert LoggedEvent.objects.filter(visitor_key=key).exists()
    result = replay_erasures()
    assert result.replayed == 1

    assert not LoggedEvent.objects.filter(visitor_key=key).exists()
    latest = ConsentRecord.objects.filter(visitor_key=key).latest("seq")
    assert latest.granted == ["analytics"]  # what the visitor kept, they keep
    assert latest.method == "withdraw"
    assert backend.visitor_data(key).profile is None
    assert CONSENT_PREFIX + "personalization" not in backend.visitor_data(key).fields
    assert CONSENT_PREFIX + "analytics" in backend.visitor_data(key).fields


def test_an_entry_that_cannot_be_applied_now_is_reported_and_applied_on_the_next_run(
    backend, settings
):
    """The fast store is down during the replay: that entry is rolled back whole (no consent
    record, no erasure record), the command says so and exits non-zero; the next run applies
    it."""
    _client, _raw, key = _visitor()
    erase_visitor(key)
    ErasureRequest.objects.filter(visitor_key=key).delete()  # as a restore would have lost it
    records = ConsentRecord.objects.count()
    reachable = settings.SEGMENTS_BACKEND
    settings.SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {"URL": "redis://127.0.0.1:1/0", "KEY_PREFIX": "unreachable"},
    }
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 not applied"):
        call_command("privacy_replay_erasures", stdout=io.StringIO(), stderr=err)
    assert "run the command again" in err.getvalue()
    assert ConsentRecord.objects.count() == records
    assert not ErasureRequest.objects.filter(visitor_key=key).exists()

    settings.SEGMENTS_BACKEND = reachable
    assert replay_erasures().replayed == 1
    assert ErasureRequest.objects.get(visitor_key=key).completed_at
