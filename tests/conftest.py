import importlib.util
import os

import pytest
from django.conf import settings

# The tiers are markers (services, worker, browser); the directories mirror the apps. The
# browser and worker fixtures live in tests/support.
pytest_plugins = [
    "tests.support.browser",
    "tests.support.worker",
    "tests.support.faults",
    "tests.support.cluster",
    "tests.support.sentinel",
]

# Without the [ml] extra, model-driven segments are not installed: their tests are not
# collected (everything else must pass without scikit-learn).
collect_ignore = [] if importlib.util.find_spec("sklearn") else ["segments_ml"]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config):
    missing = [
        name
        for name, ok in (
            ("PostgreSQL", settings.POSTGRES_AVAILABLE),
            ("Redis", settings.REDIS_AVAILABLE),
        )
        if not ok
    ]
    config._tailored_missing = missing
    if missing and IN_CI:
        raise pytest.UsageError(
            f"CI=true and {', '.join(missing)} unreachable: the integration and end-to-end tests "
            "must run against the real services (see README, 'Running the tests')."
        )


def pytest_collection_modifyitems(config, items):
    missing = config._tailored_missing
    if not missing:
        return
    skip = pytest.mark.skip(reason=f"{', '.join(missing)} unreachable (fatal under CI=true)")
    for item in items:
        if "services" in item.keywords or "worker" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    return (
        f"tailored: PostgreSQL {'up' if settings.POSTGRES_AVAILABLE else 'DOWN'}, "
        f"Redis {'up' if settings.REDIS_AVAILABLE else 'DOWN'}, CI={IN_CI}"
    )


@pytest.fixture
def backend():
    """The configured backend (real Redis when reachable), emptied before and after the test."""
    from segments.api import get_backend

    b = get_backend()
    b.flush()
    yield b
    b.flush()


@pytest.fixture(autouse=True)
def _reset_process_state():
    """Per-process caches must not leak between tests (each test's database is rolled back)."""
    from django.core.cache import cache

    import consent.notices
    import segments.backends
    import segments.definitions

    segments.backends.request_breaker.reset()
    consent.notices.forget_cache()
    segments.definitions.forget_definitions()
    cache.clear()  # rate-limit counters
    yield
    segments.backends.request_breaker.reset()
    consent.notices.forget_cache()
