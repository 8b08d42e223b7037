"""Unit tests for the consent policy (consent.policy): pure logic, no Django database."""

import dataclasses

import pytest

from consent.hashing import is_identifier
from consent.policy import (
    FLAG_GPC_OVERRIDE,
    NECESSARY,
    PAYLOAD_VERSION,
    UNDECIDED,
    ConsentState,
    InvalidChoice,
    apply_privacy_signals,
    decode_payload,
    encode_payload,
    resolve_choice,
)

VID = "0123456789abcdef0123456789abcdef"
KNOWN = frozenset({"necessary", "analytics", "marketing"})
KNOWN_LIST = ["necessary", "analytics", "marketing"]


# -- ConsentState ---------------------------------------------------------------------------


def test_undecided_defaults():
    assert ConsentState() == UNDECIDED
    assert UNDECIDED.decided is False
    assert UNDECIDED.purposes == frozenset()
    assert UNDECIDED.notice_version is None
    assert UNDECIDED.visitor_id is None
    assert UNDECIDED.visitor_key is None
    assert UNDECIDED.identified is False


def test_necessary_is_always_allowed():
    assert UNDECIDED.allows(NECESSARY) is True
    assert ConsentState(decided=True).allows("necessary") is True


def test_allows_only_granted_purposes():
    state = ConsentState(decided=True, purposes=frozenset({"analytics"}), notice_version="1")
    assert state.allows("analytics") is True
    assert state.allows("marketing") is False
    assert state.allows("Analytics") is False
    assert state.allows("") is False
    assert UNDECIDED.allows("analytics") is False


def test_gpc_override_defaults_to_false():
    assert UNDECIDED.gpc_override is False


def test_identified_follows_visitor_key():
    assert ConsentState(visitor_id=VID).identified is False
    assert ConsentState(visitor_id=VID, visitor_key="f" * 32).identified is True


def test_consent_state_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        UNDECIDED.decided = True  # type: ignore[misc]


# -- encode_payload / decode_payload --------------------------------------------------------


def P(*parts: str) -> str:
    """A payload of the current version with the given fields after the version (without a
    record number when four are given)."""
    if len(parts) == 4:
        parts = (*parts, "-")
    return "|".join((PAYLOAD_VERSION, *parts))


def test_encode_payload():
    assert PAYLOAD_VERSION == "3"
    assert FLAG_GPC_OVERRIDE == "g"
    assert encode_payload(None, frozenset(), "3") == "3|-||3||-"
    assert (
        encode_payload(VID, frozenset({"marketing", "analytics"}), "2024-05", record_seq=17)
        == f"3|{VID}|analytics+marketing|2024-05||17"
    )
    assert encode_payload(VID, frozenset({"marketing"}), "7", gpc_override=True) == (
        f"3|{VID}|marketing|7|g|-"
    )


def test_cookies_written_before_the_record_number_are_still_read():
    """Payload version 2 (no record number): checked against the record by signing time."""
    assert decode_payload(f"2|{VID}|analytics|v1|", KNOWN) == (
        VID,
        frozenset({"analytics"}),
        "v1",
        False,
        None,
    )
    assert decode_payload(f"2|{VID}|analytics|v1||5", KNOWN) is None


@pytest.mark.parametrize("seq", ["", "x", "-1", "1.5", " 1", "1" * 20, "\u0661"])
def test_a_malformed_record_number_is_refused(seq):
    assert decode_payload(P(VID, "analytics", "v1", "", seq), KNOWN) is None


@pytest.mark.parametrize(
    ("visitor_id", "purposes", "version", "gpc_override"),
    [
        (None, frozenset(), "1", False),
        (VID, frozenset(), "1", False),
        (VID, frozenset({"analytics"}), "v2", False),
        (VID, frozenset({"analytics", "marketing"}), "2024-05-01", True),
        (VID, frozenset({"marketing"}), "v2", True),
        (None, frozenset(), "", False),
    ],
)
def test_payload_round_trip(visitor_id, purposes, version, gpc_override):
    for seq in (None, 0, 123456789):
        payload = encode_payload(visitor_id, purposes, version, gpc_override, seq)
        assert decode_payload(payload, KNOWN) == (visitor_id, purposes, version, gpc_override, seq)


def test_decode_payload_values():
    assert decode_payload(P("-", "", "v1", ""), KNOWN) == (None, frozenset(), "v1", False, None)
    assert decode_payload(P(VID, "analytics", "v1", "", "42"), KNOWN) == (
        VID,
        frozenset({"analytics"}),
        "v1",
        False,
        42,
    )
    assert decode_payload(P(VID, "marketing", "v1", "g"), KNOWN) == (
        VID,
        frozenset({"marketing"}),
        "v1",
        True,
        None,
    )
    # Empty list items are ignored.
    assert decode_payload(P("-", "++", "v1", ""), KNOWN) == (None, frozenset(), "v1", False, None)
    assert decode_payload(P(VID, "analytics++analytics", "v1", ""), KNOWN) == (
        VID,
        frozenset({"analytics"}),
        "v1",
        False,
        None,
    )


@pytest.mark.parametrize(
    "payload",
    [
        # A cookie written before the GPC flag existed reads as "undecided".
        "1|-||v1",
        f"1|{VID}|analytics|v1",
        f"1|{VID}|analytics|v1|",
    ],
)
def test_decode_payload_refuses_older_payload_versions(payload):
    assert decode_payload(payload, KNOWN) is None


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "garbage",
        "2",
        "2|-",
        "2|-|",
        "2|-||v1",  # the flag field is missing
        "||||",
        "2|||||",
        "3|-||v1|",  # the current version without its record number
        "4|-||v1||-",  # unknown payload version
        "0|-||v1|",
        " 2|-||v1|",
        P("-", "", "v1", "", "extra"),
        P("-", "", "v1", "G"),  # unknown flag
        P("-", "", "v1", "gg"),
        P("-", "", "v1", "x"),
        P("-", "", "v1", " "),
        P("notanid", "analytics", "v1", ""),
        P(VID.upper(), "analytics", "v1", ""),
        P(VID[:-1], "analytics", "v1", ""),
        P(VID + "0", "analytics", "v1", ""),
        P(" " + VID, "analytics", "v1", ""),
        P(VID[:-1] + "g", "analytics", "v1", ""),
        P("", "analytics", "v1", ""),  # an empty id is not "-"
        P("-", "analytics", "v1", ""),  # a purpose needing an id, but no id
        P("-", "marketing", "v1", "g"),
        P(VID, "unknown", "v1", ""),
        P(VID, "analytics+unknown", "v1", ""),
        P(VID, "Analytics", "v1", ""),
        P(VID, "analytics,marketing", "v1", ""),
        "\x00\x01\x02",
        P("\u00e9\u00e9", "analytics", "v1", ""),
        "|" * 10_000,
        P("-", "", "") + "x|" * 1000,
        "2" * 100_000,
    ],
)
def test_decode_payload_malformed_returns_none(payload):
    assert decode_payload(payload, KNOWN) is None


def test_decode_payload_purposes_must_be_known_now():
    payload = encode_payload(VID, frozenset({"analytics", "marketing"}), "v1")
    assert decode_payload(payload, frozenset({"necessary", "analytics"})) is None
    assert decode_payload(payload, frozenset()) is None


def test_decode_payload_rejects_identifier_with_trailing_newline():
    # Regression (fixed):
    # consent.hashing.is_identifier uses ``$``, which matches before a trailing newline,
    # so "<32 hex>\n" is taken for a visitor id.
    assert decode_payload(P(VID + "\n", "analytics", "v1", ""), KNOWN) is None


def test_decode_payload_never_raises_on_forged_looking_input():
    pieces = [
        PAYLOAD_VERSION, "1", "-", VID, "analytics", "marketing", "+", "|", "", "g", "\n",
        "\x00", "v1", "\u2028",
    ]  # fmt: skip
    payloads = [a + b + c for a in pieces for b in pieces for c in pieces]
    payloads += ["|".join(p) for p in zip(*(pieces[i:] for i in range(5)), strict=False)]
    payloads += ["|".join((PAYLOAD_VERSION, a, b, "v1", c, "-")) for a in pieces for b in pieces
                 for c in pieces]  # fmt: skip
    decoded = 0
    for payload in payloads:
        result = decode_payload(payload, KNOWN)
        if result is None:
            continue
        decoded += 1
        visitor_id, purposes, _version, gpc_override, seq = result
        assert seq is None or seq >= 0
        assert purposes <= KNOWN
        assert visitor_id is None or is_identifier(visitor_id)
        assert not purposes or visitor_id is not None
        assert isinstance(gpc_override, bool)
    assert decoded > 0


# -- apply_privacy_signals ------------------------------------------------------------------

GPC_PURPOSES = frozenset({"marketing", "personalization"})


def _state(*purposes: str, gpc_override: bool = False) -> ConsentState:
    return ConsentState(
        decided=True,
        purposes=frozenset(purposes),
        notice_version="1",
        visitor_id=VID,
        visitor_key="f" * 32,
        gpc_override=gpc_override,
    )


def test_gpc_turns_off_the_purposes_it_covers():
    state = _state("analytics", "marketing", "personalization")
    result = apply_privacy_signals(state, gpc=True, gpc_purposes=GPC_PURPOSES)
    assert result.purposes == frozenset({"analytics"})
    assert result.allows("marketing") is False
    assert result.allows("analytics") is True
    assert result.visitor_key == state.visitor_key
    assert result.decided is True
    assert state.purposes == frozenset({"analytics", "marketing", "personalization"})


def test_no_gpc_signal_changes_nothing():
    state = _state("analytics", "marketing")
    assert apply_privacy_signals(state, gpc=False, gpc_purposes=GPC_PURPOSES) is state


def test_explicit_opt_in_with_gpc_overrides_the_signal():
    state = _state("marketing", gpc_override=True)
    assert apply_privacy_signals(state, gpc=True, gpc_purposes=GPC_PURPOSES) is state


def test_gpc_with_no_covered_purpose_changes_nothing():
    state = _state("analytics")
    assert apply_privacy_signals(state, gpc=True, gpc_purposes=GPC_PURPOSES) is state
    assert apply_privacy_signals(UNDECIDED, gpc=True, gpc_purposes=GPC_PURPOSES) is UNDECIDED
    assert apply_privacy_signals(state, gpc=True, gpc_purposes=frozenset()) is state


# -- resolve_choice -------------------------------------------------------------------------


def test_accept_all_grants_every_optional_purpose():
    assert resolve_choice("accept_all", [], KNOWN_LIST) == (
        frozenset({"analytics", "marketing"}),
        frozenset(),
    )


@pytest.mark.parametrize("action", ["reject_all", "withdraw"])
def test_reject_and_withdraw_deny_every_optional_purpose(action):
    assert resolve_choice(action, ["analytics"], KNOWN_LIST) == (
        frozenset(),
        frozenset({"analytics", "marketing"}),
    )


@pytest.mark.parametrize("action", ["custom", "settings", "api"])
def test_custom_grants_what_was_requested(action):
    assert resolve_choice(action, ["analytics"], KNOWN_LIST) == (
        frozenset({"analytics"}),
        frozenset({"marketing"}),
    )
    assert resolve_choice(action, [], KNOWN_LIST) == (
        frozenset(),
        frozenset({"analytics", "marketing"}),
    )
    assert resolve_choice(action, ["marketing", "analytics", "analytics"], KNOWN_LIST) == (
        frozenset({"analytics", "marketing"}),
        frozenset(),
    )


def test_necessary_is_never_granted_or_denied():
    for action in ("accept_all", "reject_all", "withdraw", "custom", "settings", "api"):
        granted, denied = resolve_choice(action, ["necessary"], KNOWN_LIST)
        assert NECESSARY not in granted
        assert NECESSARY not in denied
    assert resolve_choice("custom", ["necessary"], KNOWN_LIST) == (
        frozenset(),
        frozenset({"analytics", "marketing"}),
    )


def test_no_optional_purposes():
    assert resolve_choice("accept_all", [], ["necessary"]) == (frozenset(), frozenset())
    assert resolve_choice("accept_all", [], []) == (frozenset(), frozenset())


@pytest.mark.parametrize(
    "action", ["accept_all", "reject_all", "withdraw", "custom", "settings", "api"]
)
def test_unknown_purpose_is_refused_for_every_action(action):
    with pytest.raises(InvalidChoice, match=r"Unknown purpose\(s\): ads, zzz\."):
        resolve_choice(action, ["analytics", "zzz", "ads"], KNOWN_LIST)


@pytest.mark.parametrize("action", ["", "accept", "ACCEPT_ALL", "Accept_all", "delete", " custom"])
def test_unknown_action_is_refused(action):
    with pytest.raises(InvalidChoice, match="Unknown action"):
        resolve_choice(action, [], KNOWN_LIST)


def test_unknown_purpose_reported_before_unknown_action():
    with pytest.raises(InvalidChoice, match="Unknown purpose"):
        resolve_choice("nope", ["zzz"], KNOWN_LIST)


def test_invalid_choice_is_value_error():
    assert issubclass(InvalidChoice, ValueError)
