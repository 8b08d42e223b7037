"""Hash chain over consent records (pure: no Django).

Each record's hash is an HMAC-SHA256, under a key kept outside the database, of its canonical
content and of the previous record's hash. Whoever can write to the database but lacks the key
cannot modify, delete, insert or reorder records without :func:`verify` noticing.
"""

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS = "0" * 64
FIELDS = (
    "seq",
    "visitor_key",
    "created_at",
    "expires_at",
    "granted",
    "denied",
    "notice_version",
    "notice_hash",
    "method",
    "language",
    "gpc",
)


def canonical(record: dict) -> bytes:
    return json.dumps(
        {f: record[f] for f in FIELDS}, sort_keys=True, separators=(",", ":"), default=str
    ).encode()


def digest(key: bytes, record: dict, prev_hash: str) -> str:
    return hmac.new(key, prev_hash.encode() + b"|" + canonical(record), hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    """Whether two MACs are equal, in constant time (``==`` would tell, through timing, how
    much of a forged value is right)."""
    return hmac.compare_digest(str(a).encode(), str(b).encode())


def checkpoint_mac(key: bytes, first_seq: int, first_prev_hash: str) -> str:
    message = f"checkpoint|{first_seq}|{first_prev_hash}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int | None
    kind: str  # modified, missing, inserted, reordered, truncated, checkpoint
    detail: str

    def __str__(self) -> str:
        where = f"record #{self.seq}" if self.seq is not None else "chain"
        return f"{where}: {self.kind}: {self.detail}"


def verify(
    key: bytes,
    records: Iterable[dict],
    *,
    first_seq: int,
    first_prev_hash: str,
    head_seq: int,
    head_hash: str,
) -> tuple[int, list[Problem]]:
    """Check records (each with the FIELDS plus ``prev_hash`` and ``record_hash``, in ``seq``
    order) from the checkpoint to the head. Returns (records checked, problems)."""
    problems: list[Problem] = []
    expected_seq, expected_prev = first_seq, first_prev_hash
    checked = 0
    for record in records:
        checked += 1
        seq = record["seq"]
        if seq != expected_seq:
            kind = "missing" if seq > expected_seq else "reordered"
            problems.append(
                Problem(seq, kind, f"expected record #{expected_seq} here, found #{seq}")
            )
        if not same(record["prev_hash"], expected_prev):
            problems.append(
                Problem(
                    seq,
                    "inserted" if seq == expected_seq else "reordered",
                    "does not link to the record before it",
                )
            )
        if not same(digest(key, record, record["prev_hash"]), record["record_hash"]):
            problems.append(Problem(seq, "modified", "content does not match its hash"))
        expected_seq, expected_prev = seq + 1, record["record_hash"]
    if checked and (expected_seq - 1 != head_seq or not same(expected_prev, head_hash)):
        problems.append(
            Problem(
                None,
                "truncated",
                f"the chain ends at #{expected_seq - 1}, the head says #{head_seq}",
            )
        )
    elif not checked and head_seq >= first_seq:
        problems.append(Problem(None, "truncated", f"no records, the head says #{head_seq}"))
    return checked, problems
