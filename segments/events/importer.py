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
import math
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from consent.api import external_key, grant_imported, notice_version
from tailored import jsoninput

from .. import events as _events
from ..backends import get_backend
from ..backends.base import CONSENT_PREFIX, NOTICE_FIELD
from ..conf import get_setting
from ..consent_mirror import mirror_consent_from_record, tracking_purpose
from ..profiles.features import NAME_RE


class ImportFileError(ValueError):
    """A file or mapping the importer cannot use (bad column, unreadable format)."""


@dataclass
class Mapping:
    """Which column of an export plays which role.

    ``visitor``: the visitor's id (replaced by a keyed hash at once); ``time``: when the event
    happened (ISO 8601, epoch seconds, or ``time_format`` for strptime; times without a zone
    are in ``timezone``); the event's name is the constant ``event_name`` or the column
    ``event_column``; ``value`` (a unit price) times ``quantity`` becomes the ``value``
    property (a negative purchase is a refund); ``properties`` copies columns into event
    properties (``{"category": "StockCode"}``: property name to column). ``source`` names the
    source system, which keys the visitor hashes. :data:`PRESETS` holds ready-made mappings and
    :func:`load_mapping` reads one from a preset name or JSON.
    """

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

    @classmethod
    def from_dict(cls, data: object) -> "Mapping":
        """A mapping from its JSON form: the field names above (``price`` is accepted for
        ``value`` and ``event`` for ``event_name``); unknown keys are refused."""
        if not isinstance(data, dict):
            raise ImportFileError("A mapping is a JSON object of role -> column.")
        data = dict(data)
        for alias, name in (("price", "value"), ("event", "event_name")):
            if alias in data:
                if name in data:
                    raise ImportFileError(f"A mapping gives {alias!r} or {name!r}, not both.")
                data[name] = data.pop(alias)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ImportFileError(
                f"Unknown mapping key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}."
            )
        missing = [name for name in ("visitor", "time") if not data.get(name)]
        if missing:
            raise ImportFileError(f"A mapping needs the column(s) {', '.join(missing)}.")
        for name, value in data.items():
            if name == "properties":
                if not isinstance(value, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) and k and v for k, v in value.items()
                ):
                    raise ImportFileError("Mapping 'properties' is an object of name -> column.")
            elif value is not None and not isinstance(value, str):
                raise ImportFileError(f"Mapping {name!r} must be a string.")
        mapping = cls(**{**data, "properties": dict(data.get("properties") or {})})
        mapping.check()
        return mapping

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def check(self) -> None:
        """Refuse what no row can fix: an unknown time zone, an invalid constant event name."""
        try:
            ZoneInfo(self.timezone)
        except (ValueError, KeyError, ZoneInfoNotFoundError) as exc:
            raise ImportFileError(f"Unknown time zone {self.timezone!r}.") from exc
        if self.event_column is None and not NAME_RE.match(self.event_name or ""):
            raise ImportFileError(f"Invalid event name {self.event_name!r}.")


# Ready-made mappings, by name. The UCI Online Retail data set: one line per invoice line,
# times in the shop's local time (London), cancellations as negative quantities.
PRESETS: dict[str, Mapping] = {
    "online-retail": Mapping(
        visitor="CustomerID",
        time="InvoiceDate",
        timezone="Europe/London",
        value="UnitPrice",
        quantity="Quantity",
        properties={"category": "StockCode", "country": "Country", "order_id": "InvoiceNo"},
        source="online-retail",
    ),
}


def load_mapping(spec: str) -> Mapping:
    """A mapping from a preset name (:data:`PRESETS`), a JSON file's path, or inline JSON."""
    spec = spec.strip()
    if spec in PRESETS:
        preset = PRESETS[spec]
        return replace(preset, properties=dict(preset.properties))
    if spec.startswith("{"):
        text, where = spec, "inline mapping"
    else:
        path = Path(spec)
        if not path.is_file():
            raise ImportFileError(
                f"No mapping {spec!r}: give a preset ({', '.join(sorted(PRESETS))}), a JSON "
                "file or inline JSON."
            )
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        data = jsoninput.loads(text)
    except ValueError as exc:
        raise ImportFileError(f"{where}: not JSON ({exc})") from exc
    return Mapping.from_dict(data)


@dataclass
class ImportStats:
    rows: int = 0
    events: int = 0
    skipped: int = 0
    no_consent: int = 0
    too_old: int = 0  # before the retention window, measured from the as-of instant
    after_as_of: int = 0
    visitors: int = 0
    consents_recorded: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    partitions: set[int] = field(default_factory=set)  # where events were queued


def _is_json_lines(path: Path) -> bool:
    stem = path.name[: -len(".gz")] if path.suffix == ".gz" else path.name
    return stem.endswith((".jsonl", ".ndjson", ".json"))


def open_rows(path: str | Path) -> Iterator[dict]:
    """The file's rows as dicts; ImportFileError for a file that cannot be read as a whole."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            if _is_json_lines(path):
                for n, line in enumerate(handle, start=1):
                    if line.strip():
                        try:
                            # (the standard reader: text the log cannot store, such as NUL, is
                            # the row's own error, reported per row by validation)
                            row = json.loads(line)
                        except (ValueError, RecursionError) as exc:
                            reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
                            raise ImportFileError(f"line {n}: not JSON ({reason})") from exc
                        if not isinstance(row, dict):
                            raise ImportFileError(f"line {n}: not a JSON object")
                        yield row
            else:
                yield from csv.DictReader(handle)
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path.name}: not UTF-8 text ({exc.reason})") from exc
    except (csv.Error, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ImportFileError(f"{path.name}: unreadable ({exc})") from exc


def check_file(path: str | Path, mapping: Mapping) -> int:
    """Read the whole file once before anything is queued, so that a file that cannot be read
    (or a CSV without a mapped column) writes nothing at all; returns its number of rows."""
    rows = 0
    for row in open_rows(path):
        if rows == 0 and not _is_json_lines(Path(path)):
            wanted = [mapping.visitor, mapping.time, mapping.event_column, mapping.value]
            wanted += [mapping.quantity, *mapping.properties.values()]
            missing = sorted({c for c in wanted if c} - row.keys())
            if missing:
                raise ImportFileError(f"No column {', '.join(map(repr, missing))} in the file.")
        rows += 1
    return rows


# Times the durable log (and datetime) can hold.
MIN_TS, MAX_TS = 0.0, 253402300799.0  # 1970-01-01 to 9999-12-31


def _parse_time(value: str, mapping: Mapping, tz: ZoneInfo) -> float:
    if mapping.time_format:
        moment = datetime.strptime(value, mapping.time_format)
    else:
        try:
            ts = float(value)  # epoch seconds
        except ValueError:
            moment = datetime.fromisoformat(value)
        else:
            if not math.isfinite(ts) or not MIN_TS <= ts <= MAX_TS:
                raise ValueError(f"time {value[:40]!r} is out of range")
            return ts
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    ts = moment.timestamp()
    if not MIN_TS <= ts <= MAX_TS:
        raise ValueError(f"time {value[:40]!r} is out of range")
    return ts


def _number(value) -> float | None:
    if value in (None, ""):
        return None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{str(value)[:40]!r} is not a finite number")
    return number


def event_id_for(visitor_key: str, name: str, ts: float, properties: dict, occurrence: int) -> str:
    """The id of an imported event, derived from its content (visitor, name, time to the
    millisecond, properties) and its occurrence among identical rows of one file: importing a
    file again, under another name, in another order or inside a larger file adds nothing, and
    two genuinely identical lines of a file stay two events."""
    content = orjson.dumps(
        [visitor_key, name, round(ts, 3), properties, occurrence], option=orjson.OPT_SORT_KEYS
    )
    return hashlib.blake2b(content, digest_size=16, person=b"tailored-import").hexdigest()


class _Converter:
    """Turns rows into events, remembering keyed hashes and parsed times (exports repeat the
    same customer and the same timestamp on many consecutive lines)."""

    def __init__(self, mapping: Mapping):
        mapping.check()
        self.mapping = mapping
        self.tz = ZoneInfo(mapping.timezone)
        self.keys: dict[str, str] = {}
        self.times: dict[str, float] = {}
        # Identical rows seen so far (64 bits of their content's hash) and how often, for the
        # occurrence counter of event_id_for.
        self.seen: set[int] = set()
        self.repeats: dict[int, int] = {}

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

    def __call__(self, row: dict, n: int = 0) -> _events.Event | None:
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
        key = self.key(external)
        first = event_id_for(key, name, ts, clean, 0)
        short = int(first[:16], 16)
        if short in self.seen:
            occurrence = self.repeats[short] = self.repeats.get(short, 0) + 1
            event_id = event_id_for(key, name, ts, clean, occurrence)
        else:
            self.seen.add(short)
            event_id = first
        return _events.Event(visitor_key=key, name=name, ts=ts, event_id=event_id, properties=clean)


def read_visitor_events(path, mapping) -> list[tuple[str, list[tuple[str, float, dict]]]]:
    """Each visitor's events from an export file, read with the same validation and keyed
    hashing as an import but written nowhere (for evaluating models on data not in the log):
    ``[(key, [(name, ts, properties), ...]), ...]``, each visitor's events in time order.
    ``mapping`` is a :class:`Mapping` or what :func:`load_mapping` accepts."""
    if isinstance(mapping, str):
        mapping = load_mapping(mapping)
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
    as_of: datetime | None = None,
    batch_size: int = 5000,
    max_errors: int = 20,
) -> ImportStats:
    """Queue a file's rows as events on the stream (the drain then writes them to the durable
    log and applies the new ones to profiles; nothing is scheduled here: see
    ``import_events``).

    Rows after ``as_of`` (default: now) are not imported, nor rows older than the retention
    window (``SEGMENTS_EVENT_RETENTION_DAYS``) measured from it: the log never holds what
    retention would purge as of that instant, so profiles, rebuilds and training agree.
    """
    started = time.perf_counter()
    stats = ImportStats()
    convert = _Converter(mapping)
    check_file(path, mapping)
    backend = get_backend()
    # Appended by this process's count: refused, before anything is written, where the
    # store's drains would not find them (docs/operations.md, "When processes disagree on
    # PARTITIONS").
    problem = backend.partition_problem()
    if problem:
        raise ImportFileError(f"Nothing imported. {problem}")
    purpose, version = tracking_purpose(), notice_version()
    until = (as_of or datetime.now(UTC)).timestamp()
    since = until - int(get_setting("SEGMENTS_EVENT_RETENTION_DAYS")) * 86400
    allowed: dict[str, bool] = {}
    pending: list[tuple[_events.Event, dict]] = []  # with its stream fields

    def flush() -> None:
        new = sorted({e.visitor_key for e, _ in pending} - allowed.keys())
        if new:
            if assume_consent:
                stats.consents_recorded += grant_imported(new, frozenset({purpose}))
            _check_consent(backend, new, purpose, version, allowed)
            stats.visitors += len(new)
        by_partition: dict[int, list[dict]] = defaultdict(list)
        for event, encoded in pending:
            if allowed[event.visitor_key]:
                by_partition[backend.partition_for(event.visitor_key)].append(encoded)
                stats.events += 1
            else:
                stats.no_consent += 1
        for partition, entries in by_partition.items():
            backend.append_events(partition, entries)
            stats.partitions.add(partition)
        pending.clear()

    for n, row in enumerate(open_rows(path), start=1):
        stats.rows += 1
        try:
            event = convert(row, n)
            # (encoding checks the size limit and the last gate, before anything is written)
            encoded = _events.encode(event) if event is not None else None
        except (ValueError, TypeError) as exc:
            stats.skipped += 1
            if len(stats.errors) < max_errors:
                stats.errors.append(f"row {n}: {exc}")
            continue
        if event is None:
            stats.skipped += 1
            continue
        if event.ts > until:
            stats.after_as_of += 1
            continue
        if event.ts < since:
            stats.too_old += 1
            continue
        pending.append((event, encoded))
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


__all__ = [
    "PRESETS",
    "ImportFileError",
    "ImportStats",
    "Mapping",
    "event_id_for",
    "import_file",
    "load_mapping",
    "read_visitor_events",
]
