"""Every configuration mistake we can detect is a system check with an id and a hint."""

import re
from pathlib import Path

import pytest
from django.core import checks

from consent import checks as consent_checks
from consent.middleware import ConsentMiddleware
from personalization import checks as personalization_checks
from personalization.cache import FetchFromCacheMiddleware, UpdateCacheMiddleware
from personalization.middleware import PersonalizationMiddleware
from segments import checks as segments_checks
from tests.support.first_party import submodules


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
        *(
            (
                {"BACKEND": "segments.backends.embedded.EmbeddedBackend", "OPTIONS": options},
                "segments.E009",
            )
            for options in (
                {"PARTITIONS": 0},
                {"PARTITIONS": "8"},
                {"PARTITIONS": 4096},
                {"MAX_LENGTH": -1},
                {"SHED_EVENTS": "page_view"},
                {"SHED_EVENTS": ["Page View"]},
            )
        ),
    ],
)
def test_backend_misconfiguration(settings, config, expected):
    settings.SEGMENTS_BACKEND = config
    messages = segments_checks.check_backend() + segments_checks.check_backend_reachable()
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


def test_an_unreachable_backend_is_reported_by_the_deployment_checks_only(settings):
    settings.SEGMENTS_BACKEND = {
        "BACKEND": "segments.backends.redis.RedisBackend",
        "OPTIONS": {"URL": "redis://127.0.0.1:1/0"},
    }
    assert "segments.W001" not in ids(checks.run_checks())
    assert "segments.W001" in ids(checks.run_checks(include_deployment_checks=True))


class ProjectConsentMiddleware(ConsentMiddleware):
    pass


class ProjectPersonalizationMiddleware(PersonalizationMiddleware):
    pass


class ProjectUpdateCacheMiddleware(UpdateCacheMiddleware):
    pass


class ProjectFetchFromCacheMiddleware(FetchFromCacheMiddleware):
    pass


def _replaced(middleware: list[str], replacements: dict[str, str]) -> list[str]:
    return [replacements.get(m, m) for m in middleware]


def test_the_middleware_checks_accept_a_projects_subclasses(settings):
    consent_path = "consent.middleware.ConsentMiddleware"
    personalization_path = "personalization.middleware.PersonalizationMiddleware"
    subclasses = {
        consent_path: f"{__name__}.ProjectConsentMiddleware",
        personalization_path: f"{__name__}.ProjectPersonalizationMiddleware",
    }
    base = _replaced(settings.MIDDLEWARE, subclasses)
    settings.MIDDLEWARE = base
    assert consent_checks.check_middleware() == []
    assert personalization_checks.check_middleware() == []
    # Still in the wrong order when the subclasses are.
    reordered = [m for m in base if m != subclasses[personalization_path]]
    settings.MIDDLEWARE = [subclasses[personalization_path], *reordered]
    assert ids(personalization_checks.check_middleware()) == ["personalization.E002"]
    # Cache-safe mode with the project's own subclasses of both halves.
    settings.CONSENT_BANNER_MODE = "client"
    settings.MIDDLEWARE = [
        f"{__name__}.ProjectUpdateCacheMiddleware",
        *base,
        f"{__name__}.ProjectFetchFromCacheMiddleware",
    ]
    assert personalization_checks.check_cache_safe_mode() == []
    settings.MIDDLEWARE = [*base, f"{__name__}.ProjectFetchFromCacheMiddleware"]
    assert ids(personalization_checks.check_cache_safe_mode()) == ["personalization.E003"]
    settings.MIDDLEWARE = [
        *base,
        f"{__name__}.ProjectUpdateCacheMiddleware",
        f"{__name__}.ProjectFetchFromCacheMiddleware",
    ]
    assert ids(personalization_checks.check_cache_safe_mode()) == ["personalization.E005"]


def test_the_checks_page_lists_every_id_sorted():
    table = (Path(__file__).resolve().parents[2] / "docs" / "checks.md").read_text()
    documented = re.findall(r"^\| ([a-z_]+\.[EW]\d{3}) \|", table, flags=re.MULTILINE)
    assert documented == sorted(documented)
    sources = "".join(
        Path(module.__file__).read_text() for _app, module in submodules("checks", shipped=True)
    )
    assert set(documented) == set(re.findall(r'id="([a-z_]+\.[EW]\d{3})"', sources))


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
    assert ids(segments_checks.check_event_rate()) == ["segments.E006"]


@pytest.mark.parametrize("rate", ["30/min", "120/minute", "5/s", "1000/day", "2/h", None])
def test_rates_in_drf_syntax_pass(settings, rate):
    settings.CONSENT_RATE = rate
    settings.SEGMENTS_EVENT_RATE = rate
    assert consent_checks.check_rate() == []
    assert segments_checks.check_event_rate() == []


def test_an_unknown_time_zone_for_segment_rules(settings):
    settings.SEGMENTS_TIME_ZONE = "Mars/Olympus_Mons"
    assert ids(segments_checks.check_time_zone()) == ["segments.E007"]
    settings.SEGMENTS_TIME_ZONE = None
    assert ids(segments_checks.check_time_zone()) == []


@pytest.mark.parametrize(
    "name, value",
    [
        ("SEGMENTS_LOCK_TTL_MS", 10),
        ("SEGMENTS_LOCK_TTL_MS", "5000"),
        ("SEGMENTS_DEAD_LETTER_ATTEMPTS", 0),
    ],
)
def test_drain_settings_out_of_range_are_refused(settings, name, value):
    setattr(settings, name, value)
    messages = segments_checks.check_drain()
    assert ids(messages) == ["segments.E008"] and messages[0].hint
