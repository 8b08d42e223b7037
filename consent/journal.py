"""The erasure journal: every completed erasure, kept outside the database, so that erasures
can be applied again after the database is restored from a backup taken before them
(``privacy_replay_erasures``; docs/privacy.md, "After restoring a backup").

Each erasure is one small JSON file, written once and never changed, in the Django storage
named by ``CONSENT_ERASURE_JOURNAL_STORAGE`` under ``CONSENT_ERASURE_JOURNAL_PREFIX`` (one file
per entry: appending needs no read-modify-write, which object stores do not offer, and two
processes never write the same file). An entry holds only the visitor's pseudonymous key (a
keyed hash), the purposes, the reason and times; never a raw identifier. Each entry carries an
HMAC-SHA256 under a key derived from the consent log's chain key (outside the database), so an
altered or forged entry is detected and refused. Removal of an entry is not detectable from the
journal itself: keep the journal in write-once storage (object lock / WORM) where that matters.
"""

import hashlib
import hmac
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core.files.base import ContentFile
from django.core.files.storage import storages

from .conf import get_setting
from .identity import chain_key

logger = logging.getLogger(__name__)

VERSION = 1
_FIELDS = ("v", "id", "visitor_key", "purposes", "reason", "requested_at", "completed_at")


@dataclass(frozen=True, slots=True)
class Entry:
    """One journalled erasure (``purposes`` empty: everything was erased)."""

    id: str
    visitor_key: str
    purposes: tuple[str, ...]
    reason: str
    requested_at: datetime
    completed_at: datetime


@dataclass(frozen=True, slots=True)
class Invalid:
    """A journal file that cannot be trusted (altered, forged or unreadable)."""

    name: str
    problem: str


def _storage():
    return storages[get_setting("CONSENT_ERASURE_JOURNAL_STORAGE")]


def _prefix() -> str:
    prefix = get_setting("CONSENT_ERASURE_JOURNAL_PREFIX").strip("/")
    return f"{prefix}/" if prefix else ""


def _journal_key() -> bytes:
    return hmac.new(chain_key(), b"tailored.consent.erasure-journal", hashlib.sha256).digest()


def _mac(body: dict) -> str:
    canonical = json.dumps({f: body[f] for f in _FIELDS}, sort_keys=True, separators=(",", ":"))
    return hmac.new(_journal_key(), canonical.encode(), hashlib.sha256).hexdigest()


def append(
    visitor_key: str, purposes, reason: str, requested_at: datetime, completed_at: datetime
) -> str:
    """Write one entry; returns its name in the storage. Raises if the storage fails, so the
    caller's transaction (the erasure's completion) rolls back and the erasure is retried."""
    body = {
        "v": VERSION,
        "id": uuid.uuid4().hex,
        "visitor_key": visitor_key,
        "purposes": sorted(purposes),
        "reason": str(reason),
        "requested_at": requested_at.isoformat(),
        "completed_at": completed_at.isoformat(),
    }
    body["mac"] = _mac(body)
    # Names sort by completion time, and a month per folder keeps listings short.
    at = completed_at.astimezone(UTC)
    name = f"{_prefix()}{at:%Y/%m}/{at:%Y%m%dT%H%M%S%fZ}-{body['id']}.json"
    return _storage().save(name, ContentFile(json.dumps(body, sort_keys=True).encode()))


def _names(storage, folder: str):
    try:
        dirs, files = storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in sorted(files):
        if name.endswith(".json"):
            yield f"{folder}{name}"
    for sub in sorted(dirs):
        yield from _names(storage, f"{folder}{sub}/")


def read(since: datetime | None = None) -> tuple[list[Entry], list[Invalid]]:
    """Every entry (completed at or after ``since``), oldest first, and the files refused."""
    storage = _storage()
    entries: list[Entry] = []
    invalid: list[Invalid] = []
    # Names begin with the completion time: older entries are not even opened.
    oldest = f"{since.astimezone(UTC):%Y%m%dT%H%M%S}" if since is not None else ""
    for name in _names(storage, _prefix()):
        if name.rpartition("/")[2][:15] < oldest[:15]:
            continue
        try:
            with storage.open(name, "rb") as f:
                body = json.loads(f.read())
            if body.get("v") != VERSION or not hmac.compare_digest(
                str(body.get("mac", "")), _mac(body)
            ):
                invalid.append(Invalid(name, "its MAC does not match (altered or forged)"))
                continue
            entry = Entry(
                id=body["id"],
                visitor_key=body["visitor_key"],
                purposes=tuple(body["purposes"]),
                reason=body["reason"],
                requested_at=datetime.fromisoformat(body["requested_at"]),
                completed_at=datetime.fromisoformat(body["completed_at"]),
            )
        except (ValueError, KeyError, TypeError, OSError) as exc:
            invalid.append(Invalid(name, f"unreadable ({type(exc).__name__})"))
            continue
        if since is None or entry.completed_at >= since:
            entries.append(entry)
    entries.sort(key=lambda e: e.completed_at)
    return entries, invalid


__all__ = ["Entry", "Invalid", "append", "read"]
