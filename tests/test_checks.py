"""Every configuration mistake we can detect is a system check with an id and a hint."""

import pytest
from django.core import checks

from consent import checks as consent_checks
from personalization import checks as personalization_checks
from segments import checks as segments_checks


def ids(messages):
    return [m.id for m in messages]


def test_the_test_settings_pass_every_check():
    assert [m for m in checks.run_checks() if m.level >= checks.WARNING] == []


def test_missing_consent_middleware(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "ConsentMiddleware" not in m]
    assert ids(consent_checks.check_middleware()) == ["consent.E001"]


def test_missing_or_misordered_personalization_middleware(settings):
    base = [m for m in settings.MIDDLEWARE if "PersonalizationMiddleware" not in m]
    settings.MIDDLEWARE = base
    assert ids(personalization_checks.check_middleware()) == ["personalization.E001"]
    settings.MIDDLEWARE = ["personalization.middleware.PersonalizationMiddleware", *base]
    messages = personalization_checks.check_middleware()
    assert ids(messages) == ["personalization.E002"] and messages[0].hint


def test_missing_hash_key_in_production(settings):
    settings.CONSENT_HASH_KEY = ""
    settings.DEBUG = False
    assert ids(consent_checks.check_hash_key()) == ["consent.E003"]
    settings.DEBUG = True
    assert ids(consent_checks.check_hash_key()) == ["consent.W001"]
    settings.CONSENT_HASH_KEY = "short"
    assert ids(consent_checks.check_hash_key()) == ["consent.W002"]


def test_bad_purposes(settings):
    settings.CONSENT_PURPOSES = ["analytics", "Bad Name"]
    assert ids(consent_checks.check_purposes()) == ["consent.E004", "consent.E005"]
    settings.SEGMENTS_PURPOSE = "telepathy"
    assert ids(segments_checks.check_purpose()) == ["segments.E004"]


@pytest.mark.parametrize(
    "config, expected",
    [
        ("redis://nope", "segments.E001"),
        ({"BACKEND": "segments.backends.nope.Backend"}, "segments.E002"),
        ({"BACKEND": "segments.backends.redis.RedisBackend", "OPTIONS": {}}, "segments.E003"),
        (
            {
                "BACKEND": "segments.backends.redis.RedisBackend",
                "OPTIONS": {"URL": "redis://127.0.0.1:1/0"},
            },
            "segments.W001",
        ),
    ],
)
def test_backend_misconfiguration(settings, config, expected):
    settings.SEGMENTS_BACKEND = config
    messages = segments_checks.check_backend()
    assert ids(messages) == [expected]
    assert messages[0].hint


def test_rotation_without_a_chain_key_and_bad_modes(settings):
    settings.CONSENT_PREVIOUS_HASH_KEYS = ["old-key-0123456789abcdef0123456789"]
    settings.CONSENT_BANNER_MODE = "sometimes"
    settings.CONSENT_GPC_PURPOSES = ["telepathy"]
    assert ids(consent_checks.check_rotation_and_modes()) == [
        "consent.E006",
        "consent.E007",
        "consent.E008",
    ]
    settings.CONSENT_CHAIN_KEY = "chain-0123456789abcdef0123456789abcdef"
    settings.CONSENT_BANNER_MODE = "client"
    settings.CONSENT_GPC_PURPOSES = ["marketing"]
    assert consent_checks.check_rotation_and_modes() == []


def test_the_old_integer_rate_settings_are_refused(settings):
    settings.CONSENT_RATE_LIMIT = 10
    settings.CONSENT_RATE_LIMIT_WINDOW = 3600
    messages = consent_checks.check_rate()
    assert ids(messages) == ["consent.E009"]
    assert 'CONSENT_RATE instead ("10/hour" says the same)' in messages[0].hint
    del settings.CONSENT_RATE_LIMIT_WINDOW
    settings.CONSENT_RATE_LIMIT = 0  # the old way of switching the limit off
    assert "(None says the same)" in consent_checks.check_rate()[0].hint


@pytest.mark.parametrize("rate", ["30", "30/fortnight", "30 / min", "thirty/min", "0/min", 30])
def test_malformed_rates_are_refused(settings, rate):
    settings.CONSENT_RATE = rate
    settings.SEGMENTS_EVENT_RATE = rate
    assert ids(consent_checks.check_rate()) == ["consent.E010"]
    assert ids(segments_checks.check_event_rate()) == ["segments.E005"]


@pytest.mark.parametrize("rate", ["30/min", "120/minute", "5/s", "1000/day", "2/h", None])
def test_rates_in_drf_syntax_pass(settings, rate):
    settings.CONSENT_RATE = rate
    settings.SEGMENTS_EVENT_RATE = rate
    assert consent_checks.check_rate() == []
    assert segments_checks.check_event_rate() == []
