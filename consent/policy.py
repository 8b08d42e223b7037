"""Consent policy: what a visitor's decision allows (pure: no Django).

The browser holds only a signed *reference* to a decision (see :mod:`consent.cookies`); this
module parses its payload and answers questions about it. Whether the server still honours the
decision (withdrawn elsewhere, expired, erased) is checked against the server's own record by
the layer that touches the fast store, in the same round trip that reads the visitor's profile.
"""

from dataclasses import dataclass, field, replace

from .hashing import is_identifier

NECESSARY = "necessary"
PAYLOAD_VERSION = "3"
# Cookies written before the record's number was part of the payload: still read, and checked
# against the server's record by their signing time instead (consent.standing).
LEGACY_PAYLOAD_VERSION = "2"
FLAG_GPC_OVERRIDE = "g"
_SEP = "|"
_LIST_SEP = "+"


class InvalidChoice(ValueError):
    """A consent request named a purpose or action that does not exist."""


@dataclass(frozen=True, slots=True)
class ConsentState:
    """A visitor's consent decision as claimed by their (verified) cookie.

    ``decided`` is False until the visitor chose (the banner shows). ``visitor_id`` is the raw
    128-bit identifier, present only when a purpose that needs one was granted; it lives in
    memory for the request and is never stored: ``visitor_key`` (its keyed hash) is.
    """

    decided: bool = False
    purposes: frozenset[str] = field(default_factory=frozenset)
    notice_version: str | None = None
    visitor_id: str | None = None
    visitor_key: str | None = None
    # The visitor opted in explicitly while sending Global Privacy Control: GPC is overridden.
    gpc_override: bool = False
    # The number (``seq``) of the consent record the cookie was written for: a cookie naming an
    # earlier record than the server's latest for its identifier is an old copy and counts as
    # no consent (consent.standing). ``None`` for cookies written before it was recorded.
    record_seq: int | None = None
    # When the cookie was signed (seconds since the epoch; 0 for a state no cookie carried).
    signed_at: float = 0.0

    def allows(self, purpose: str) -> bool:
        return purpose == NECESSARY or purpose in self.purposes

    @property
    def identified(self) -> bool:
        return self.visitor_key is not None


UNDECIDED = ConsentState()


def encode_payload(
    visitor_id: str | None,
    purposes: frozenset[str],
    notice_version: str,
    gpc_override: bool = False,
    record_seq: int | None = None,
) -> str:
    return _SEP.join(
        (
            PAYLOAD_VERSION,
            visitor_id or "-",
            _LIST_SEP.join(sorted(purposes)),
            notice_version,
            FLAG_GPC_OVERRIDE if gpc_override else "",
            "-" if record_seq is None else str(record_seq),
        )
    )


def decode_payload(
    payload: str, known_purposes: frozenset[str]
) -> tuple[str | None, frozenset[str], str, bool, int | None] | None:
    """Parse a verified cookie payload: (visitor id, purposes, notice version, GPC override,
    record number); ``None`` for anything malformed (never raises)."""
    parts = payload.split(_SEP)
    if parts[0] == LEGACY_PAYLOAD_VERSION and len(parts) == 5:
        parts.append("-")  # no record number: checked by its signing time
    elif parts[0] != PAYLOAD_VERSION or len(parts) != 6:
        return None
    if parts[4] not in ("", FLAG_GPC_OVERRIDE):
        return None
    raw_seq = parts[5]
    if raw_seq == "-":
        record_seq = None
    elif raw_seq.isascii() and raw_seq.isdigit() and len(raw_seq) <= 19:
        record_seq = int(raw_seq)
    else:
        return None
    raw_id, raw_purposes, version = parts[1], parts[2], parts[3]
    visitor_id = None if raw_id == "-" else raw_id
    if visitor_id is not None and not is_identifier(visitor_id):
        return None
    purposes = frozenset(p for p in raw_purposes.split(_LIST_SEP) if p)
    if not purposes <= known_purposes:
        return None
    if purposes and visitor_id is None:
        return None
    return visitor_id, purposes, version, parts[4] == FLAG_GPC_OVERRIDE, record_seq


def apply_privacy_signals(
    state: ConsentState, *, gpc: bool, gpc_purposes: frozenset[str]
) -> ConsentState:
    """Global Privacy Control (or Do-Not-Track where configured) turns off the purposes it
    covers, unless the visitor opted in explicitly while sending the signal. Precedence: an
    explicit choice made with the signal on > the signal > a choice made without the signal."""
    if not gpc or state.gpc_override or state.purposes.isdisjoint(gpc_purposes):
        return state
    return replace(state, purposes=state.purposes - gpc_purposes)


def resolve_choice(
    action: str, requested: list[str], known_purposes: list[str]
) -> tuple[frozenset[str], frozenset[str]]:
    """Turn a banner or preferences submission into (granted, denied) purposes.

    ``necessary`` is never part of either set: it needs no consent and cannot be refused.
    Raises :class:`InvalidChoice` for an unknown action or purpose, so nothing is written.
    """
    optional = [p for p in known_purposes if p != NECESSARY]
    unknown = sorted(set(requested) - set(known_purposes))
    if unknown:
        raise InvalidChoice(f"Unknown purpose(s): {', '.join(unknown)}.")
    if action == "accept_all":
        granted = frozenset(optional)
    elif action in ("reject_all", "withdraw"):
        granted = frozenset()
    elif action in ("custom", "settings", "api"):
        granted = frozenset(p for p in requested if p != NECESSARY)
    else:
        raise InvalidChoice(
            "Unknown action: expected accept_all, reject_all, custom, settings, api or withdraw."
        )
    return granted, frozenset(optional) - granted
