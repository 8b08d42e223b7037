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


@pytest.mark.django_db
def test_enabled_segments_with_rules_the_engine_refuses():
    from segments.models import Segment

    engaged = {"type": "event_count", "event": "page_view", "min": 3, "window": "10m"}
    Segment.objects.create(name="A", slug="a", rule=engaged)
    # Saved without the form's validation (as rules stored before unknown keys were refused).
    Segment.objects.create(name="B", slug="b", rule={**engaged, "minn": 3})
    Segment.objects.create(name="C", slug="c", rule={"type": "nope"}, enabled=False)
    messages = segments_checks.check_stored_rules(databases=["default"])
    assert ids(messages) == ["segments.E005"]
    assert messages[0].msg.startswith("Segment 'b' has a rule the engine refuses: minn: unknown")
    assert messages[0].hint
    assert segments_checks.check_stored_rules() == []  # only with --database (and migrate)
