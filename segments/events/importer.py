"""Backfilling events from CRM or analytics exports (CSV or JSON Lines, optionally gzipped).

Each row becomes one event for the visitor named by a column; that identifier is replaced by a
keyed hash at once (``consent.api.external_key``), never stored. Rows are validated like any
event; events of visitors without consent for the purpose are dropped, unless the import is
told that consent was obtained elsewhere (``assume_consent``), which is recorded in the consent
log for each visitor. Events go through the same stream and workers as live ones.
"""

import csv
import gzip
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from consent.api import external_key, grant_imported, notice_version

from .. import events as _events
from ..backends import get_backend
from ..backends.base import CONSENT_PREFIX, NOTICE_FIELD
from ..consent_mirror import mirror_consent_from_record, tracking_purpose


class ImportFileError(ValueError):
    """A file or mapping the importer cannot use (bad column, unreadable format)."""


@dataclass
class Mapping:
    visitor: str
    time: str
    event_name: str = "purchase"
    event_column: str | None = None
    value: str | None = None
    quantity: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    time_format: str | None = None
    timezone: str = "UTC"
    source: str = "import"


@dataclass
class ImportStats:
    rows: int = 0
    events: int = 0
    skipped: int = 0
    no_consent: int = 0
    visitors: int = 0
    consents_recorded: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def open_rows(path: str | Path) -> Iterator[dict]:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    stem = path.name[: -len(".gz")] if path.suffix == ".gz" else path.name
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        if stem.endswith((".jsonl", ".ndjson", ".json")):
            for n, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except ValueError as exc:
                        raise ImportFileError(f"line {n}: not JSON ({exc})") from exc
                    if not isinstance(row, dict):
                        raise ImportFileError(f"line {n}: not a JSON object")
                    yield row
        else:
            yield from csv.DictReader(handle)


def _parse_time(value: str, mapping: Mapping, tz: ZoneInfo) -> float:
    if mapping.time_format:
        moment = datetime.strptime(value, mapping.time_format)
    else:
        try:
            return float(value)  # epoch seconds
        except ValueError:
            moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.timestamp()


def _number(value) -> float | None:
    if value in (None, ""):
        return None
    return float(value)


class _Converter:
    """Turns rows into events, remembering keyed hashes and parsed times (exports repeat the
    same customer and the same timestamp on many consecutive lines)."""

    def __init__(self, mapping: Mapping):
        self.mapping = mapping
        self.tz = ZoneInfo(mapping.timezone)
        self.keys: dict[str, str] = {}
        self.times: dict[str, float] = {}
        self.id_prefix = hashlib.sha256(mapping.source.encode()).digest()

    def time(self, value: str) -> float:
        ts = self.times.get(value)
        if ts is None:
            if len(self.times) > 100_000:
                self.times.clear()
            ts = self.times[value] = _parse_time(value, self.mapping, self.tz)
        return ts

    def key(self, external: str) -> str:
        key = self.keys.get(external)
        if key is None:
            key = self.keys[external] = external_key(self.mapping.source, external)
        return key

    def __call__(self, row: dict, n: int) -> _events.Event | None:
        """The event for one row, None for a row without a visitor. Raises ValueError (or
        EventError) with a message for a bad row."""
        mapping = self.mapping
        external = row.get(mapping.visitor)
        external = str(external).strip() if external is not None else ""
        if not external:
            return None
        name = str(row.get(mapping.event_column)) if mapping.event_column else mapping.event_name
        properties = {}
        for prop, column in mapping.properties.items():
            value = row.get(column)
            if value not in (None, ""):
                properties[prop] = value if isinstance(value, int | float | bool) else str(value)
        price = _number(row.get(mapping.value)) if mapping.value else None
        if price is not None:
            quantity = _number(row.get(mapping.quantity)) if mapping.quantity else None
            value = round(price * (quantity if quantity is not None else 1.0), 4)
            if value < 0 and name == "purchase":
                name, value = "refund", -value  # a cancellation line
            properties["value"] = value
            if quantity is not None:
                properties["quantity"] = quantity
        clean = _events.validate(name, properties)
        ts = self.time(str(row.get(mapping.time) or ""))
        # A deterministic id per source row: importing the same file twice adds no duplicate
        # rows to the durable log.
        event_id = hashlib.blake2b(
            n.to_bytes(8, "big"), key=self.id_prefix[:32], digest_size=16
        ).hexdigest()
        return _events.Event(
            visitor_key=self.key(external), name=name, ts=ts, event_id=event_id, properties=clean
        )


def read_visitor_events(path, mapping) -> list[tuple[str, list[tuple[str, float, dict]]]]:
    """Each visitor's events from an export file, read with the same validation and keyed
    hashing as an import but written nowhere (for evaluating models on data not in the log):
    ``[(key, [(name, ts, properties), ...]), ...]``, each visitor's events in time order."""
    convert = _Converter(mapping)
    by_visitor: dict[str, list[tuple[str, float, dict]]] = {}
    for n, row in enumerate(open_rows(path), start=1):
        try:
            event = convert(row, n)
        except (ValueError, TypeError):
            continue
        if event is None:
            continue
        by_visitor.setdefault(event.visitor_key, []).append(
            (event.name, event.ts, event.properties)
        )
    for events in by_visitor.values():
        events.sort(key=lambda e: e[1])
    return list(by_visitor.items())


def import_file(
    path: str | Path,
    mapping: Mapping,
    *,
    assume_consent: bool = False,
    batch_size: int = 5000,
    max_errors: int = 20,
) -> ImportStats:
    started = time.perf_counter()
    stats = ImportStats()
    convert = _Converter(mapping)
    backend = get_backend()
    purpose, version = tracking_purpose(), notice_version()
    allowed: dict[str, bool] = {}
    pending: list[_events.Event] = []

    def flush() -> None:
        new = sorted({e.visitor_key for e in pending} - allowed.keys())
        if new:
            if assume_consent:
                stats.consents_recorded += grant_imported(new, frozenset({purpose}))
            _check_consent(backend, new, purpose, version, allowed)
            stats.visitors += len(new)
        by_partition: dict[int, list[dict]] = defaultdict(list)
        for event in pending:
            if allowed[event.visitor_key]:
                by_partition[backend.partition_for(event.visitor_key)].append(_events.encode(event))
                stats.events += 1
            else:
                stats.no_consent += 1
        for partition, fields in by_partition.items():
            backend.append_events(partition, fields)
        pending.clear()

    for n, row in enumerate(open_rows(path), start=1):
        stats.rows += 1
        try:
            event = convert(row, n)
        except (ValueError, TypeError) as exc:
            stats.skipped += 1
            if len(stats.errors) < max_errors:
                stats.errors.append(f"row {n}: {exc}")
            continue
        if event is None:
            stats.skipped += 1
            continue
        pending.append(event)
        if len(pending) >= batch_size:
            flush()
    flush()
    stats.seconds = time.perf_counter() - started
    return stats


def _check_consent(backend, keys: list[str], purpose: str, version: str, allowed: dict) -> None:
    now = time.time()
    states = backend.load_visitors(keys)
    for key in keys:
        fields = states[key].fields
        if not fields:
            mirror_consent_from_record(key)
            fields = backend.load_visitors([key])[key].fields
        expiry = fields.get(CONSENT_PREFIX + purpose)
        allowed[key] = (
            expiry is not None and float(expiry) > now and fields.get(NOTICE_FIELD) == version
        )


__all__ = ["ImportFileError", "ImportStats", "Mapping", "import_file"]
