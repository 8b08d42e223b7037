import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery import current_app
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError
from django.utils.module_loading import import_string

from consent.api import purposes, rate_problem, shared_cache_problem

from .backends import get_backend
from .backends.base import MAX_PARTITIONS, BackendUnavailable
from .conf import get_setting
from .events import NAME_RE
from .models import Segment
from .rules import validate_rule


@register()
def check_backend(app_configs=None, **kwargs):
    config = get_setting("SEGMENTS_BACKEND")
    if not isinstance(config, dict) or "BACKEND" not in config:
        return [
            Error(
                "SEGMENTS_BACKEND must be a dict with a 'BACKEND' dotted path.",
                hint="For example {'BACKEND': 'segments.backends.redis.RedisBackend', "
                "'OPTIONS': {'URL': 'redis://127.0.0.1:6379/0'}}.",
                id="segments.E001",
            )
        ]
    try:
        import_string(config["BACKEND"])
    except ImportError as exc:
        return [
            Error(
                f"SEGMENTS_BACKEND cannot be imported: {exc}.",
                hint="Check the dotted path of the backend class.",
                id="segments.E002",
            )
        ]

    problem = stream_option_problem(config.get("OPTIONS") or {})
    if problem:
        return [
            Error(
                f"SEGMENTS_BACKEND['OPTIONS']: {problem}",
                hint="Raising PARTITIONS on a live site: docs/operations.md, 'Raising "
                "PARTITIONS on a live site'.",
                id="segments.E009",
            )
        ]
    try:
        get_backend()
    except Exception as exc:  # a misconfigured option surfaces here, not at request time
        return [
            Error(
                f"SEGMENTS_BACKEND could not be created: {exc}.",
                hint="Check SEGMENTS_BACKEND['OPTIONS'] (for Redis: 'URL').",
                id="segments.E003",
            )
        ]
    return []


# A deployment check (``manage.py check --deploy``): it pings the fast store, so as an ordinary
# check it would make every command that runs the checks (runserver, migrate...) wait on the
# network, up to its timeouts when Redis is away.
@register(deploy=True)
def check_backend_reachable(app_configs=None, **kwargs):
    if check_backend():
        return []  # not configured correctly: check_backend reports it

    if not get_backend().ping():
        return [
            Warning(
                "The segments backend (fast store and event stream) is unreachable.",
                hint="Start Redis or fix REDIS_URL. Until then pages show default content and "
                "no behaviour is recorded.",
                id="segments.W001",
            )
        ]
    return [
        Warning(
            f"{problem}.",
            hint="See docs/installation.md, 'Redis persistence and faults': appendonly yes, "
            "appendfsync everysec (or always), maxmemory-policy noeviction.",
            id="segments.W002",
        )
        for problem in get_backend().durability_problems()
    ]


# A deployment check too (it reads the store), run where a deploy is checked before its
# processes start. It only reads: the count a deploy job's settings name is not recorded
# before any process runs with it (the first process to use the store records its own).
@register(deploy=True)
def check_partitions(app_configs=None, **kwargs):
    if check_backend():
        return []  # not configured correctly: check_backend reports it
    try:
        problem = get_backend().partition_problem(record=False)
    except BackendUnavailable:
        return []  # unreachable: segments.W001 says so
    if problem is None:
        return []
    return [
        Error(
            problem,
            hint="Until the processes agree, drains refuse to run (the events wait) and the "
            "readiness check fails: docs/operations.md, 'When processes disagree on "
            "PARTITIONS'.",
            id="segments.E011",
        )
    ]


@register()
def check_purpose(app_configs=None, **kwargs):

    purpose = get_setting("SEGMENTS_PURPOSE")
    if purpose not in purposes():
        return [
            Error(
                f"SEGMENTS_PURPOSE {purpose!r} is not one of CONSENT_PURPOSES.",
                hint="Name the consent purpose under which behaviour may be recorded.",
                id="segments.E004",
            )
        ]
    return []


@register(Tags.database)
def check_stored_rules(app_configs=None, databases=None, **kwargs):
    """Enabled segments whose stored rule the engine now refuses: saved before a stricter rule
    (unknown keys are errors), or naming a condition type no installed app registers. Loading
    the enabled segments would fail on them, so ``migrate`` and ``check --database`` say so."""

    errors = []
    for alias in databases or ():
        try:
            rows = list(
                Segment.objects.using(alias).filter(enabled=True).values_list("slug", "rule")
            )
        except DatabaseError:  # not migrated yet: nothing stored to check
            continue
        for slug, rule in rows:
            for path, message in validate_rule(rule):
                errors.append(
                    Error(
                        f"Segment {slug!r} has a rule the engine refuses: "
                        f"{f'{path}: ' if path else ''}{message}",
                        hint="Correct the rule in the admin (Snippets > Segments) or disable "
                        "the segment.",
                        obj=f"segment {slug}",
                        id="segments.E005",
                    )
                )
    return errors


RATE_SETTINGS = ("SEGMENTS_EVENT_RATE", "SEGMENTS_EVENT_VISITOR_RATE")


@register()
def check_event_rate(app_configs=None, **kwargs):
    errors = []
    for name in RATE_SETTINGS:
        problem = rate_problem(get_setting(name))
        if problem:
            errors.append(
                Error(
                    f"{name} is not a rate: {problem}.",
                    hint='Use DRF\'s "requests/period" syntax, e.g. "120/min", or None for no '
                    "limit.",
                    id="segments.E006",
                )
            )
    return errors


@register(Tags.caches, deploy=True)
def check_event_rate_cache(app_configs=None, **kwargs):
    if all(get_setting(name) is None for name in RATE_SETTINGS):
        return []
    problem = shared_cache_problem()
    if problem:
        return [
            Warning(
                f"The event endpoint is rate limited but {problem}.",
                hint="Point CONSENT_RATE_LIMIT_CACHE at a cache every process shares (Django's "
                "RedisCache, see docs/installation.md), or set SEGMENTS_EVENT_RATE and "
                "SEGMENTS_EVENT_VISITOR_RATE to None.",
                id="segments.W003",
            )
        ]
    return []


@register()
def check_time_zone(app_configs=None, **kwargs):
    name = get_setting("SEGMENTS_TIME_ZONE") or settings.TIME_ZONE or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        setting = "SEGMENTS_TIME_ZONE" if get_setting("SEGMENTS_TIME_ZONE") else "TIME_ZONE"
        return [
            Error(
                f"{setting} {name!r} is not a known time zone.",
                hint="Use an IANA name such as 'Europe/Paris' (hour and weekday conditions use "
                "UTC until then).",
                id="segments.E007",
            )
        ]
    return []


def stream_option_problem(options: dict) -> str | None:
    """What is wrong with the stream's options (partitions, cap, sheddable events), if anything."""
    partitions = options.get("PARTITIONS", 4)
    if type(partitions) is not int or not 1 <= partitions <= MAX_PARTITIONS:
        return f"PARTITIONS must be a whole number from 1 to {MAX_PARTITIONS}, not {partitions!r}."
    previous = options.get("PREVIOUS_PARTITIONS", 0)
    if previous and (type(previous) is not int or previous >= partitions or partitions % previous):
        return (
            f"PREVIOUS_PARTITIONS ({previous!r}) must divide PARTITIONS ({partitions}) and be "
            "smaller (raise it by a whole factor)."
        )
    if options.get("CLUSTER") and set(str(options.get("KEY_PREFIX", ""))) & {"{", "}"}:
        return "KEY_PREFIX must not hold { or } on a cluster: the keys' hash tags are the store's."
    if previous and options.get("CLUSTER"):
        return (
            "PREVIOUS_PARTITIONS is not supported on a Redis Cluster: on a cluster, change "
            "PARTITIONS with every process stopped and the stream drained, then "
            "rebuild_fast_store."
        )
    cap = options.get("MAX_LENGTH", 0)
    if type(cap) is not int or cap < 0:
        return f"MAX_LENGTH must be a whole number of entries (0: no cap), not {cap!r}."
    hard = options.get("HARD_MAX_LENGTH", 0)
    if type(hard) is not int or hard < 0:
        return f"HARD_MAX_LENGTH must be a whole number of entries (0: none), not {hard!r}."
    if hard and cap and hard < cap:
        return f"HARD_MAX_LENGTH ({hard}) must not be below MAX_LENGTH ({cap})."
    for option in ("SHED_EVENTS", "KEEP_EVENTS"):
        names = options.get(option, [])
        if isinstance(names, str) or not all(
            isinstance(n, str) and NAME_RE.match(n) for n in names
        ):
            return f"{option} must be a list of event names, not {names!r}."
    return None


@register()
def check_drain(app_configs=None, **kwargs):
    ttl = get_setting("SEGMENTS_LOCK_TTL_MS")
    attempts = get_setting("SEGMENTS_DEAD_LETTER_ATTEMPTS")
    if type(ttl) is not int or ttl < 1000:
        problem = f"SEGMENTS_LOCK_TTL_MS must be at least 1000 (milliseconds), not {ttl!r}."
    elif type(attempts) is not int or attempts < 1:
        problem = f"SEGMENTS_DEAD_LETTER_ATTEMPTS must be at least 1, not {attempts!r}."
    else:
        return []
    return [
        Error(
            problem,
            hint="The drain lock is renewed every third of its lifetime; a failing entry is "
            "tried this many times before it goes to the dead letters.",
            id="segments.E008",
        )
    ]


@register()
def check_bot_user_agents(app_configs=None, **kwargs):
    pattern = get_setting("SEGMENTS_BOT_USER_AGENTS")
    if pattern is None or pattern == "":
        return []
    problem = None
    if not isinstance(pattern, str):
        problem = f"must be a regular expression (a string) or None, not {pattern!r}"
    else:
        try:
            re.compile(pattern)
        except re.error as exc:
            problem = f"is not a valid regular expression: {exc}"
    if problem is None:
        return []
    return [
        Error(
            f"SEGMENTS_BOT_USER_AGENTS {problem}.",
            hint="It is searched (case-insensitively) in each request's User-Agent; None records "
            "every user agent (docs/installation.md, 'Headless browsers and scripts').",
            id="segments.E010",
        )
    ]


@register()
def check_celery_reads_settings(app_configs=None, **kwargs):
    """The tasks (draining events into segments) are sent with the current Celery app: one that
    does not read the Django settings sends them to Celery's default broker, where nothing runs
    them, and ignores CELERY_TASK_ALWAYS_EAGER; visitors then never enter a segment."""
    conf = current_app.conf
    eager = bool(getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False))
    broker = getattr(settings, "CELERY_BROKER_URL", None)
    if bool(conf.task_always_eager) == eager and (
        conf.broker_url == broker if broker is not None else (eager or conf.broker_url)
    ):
        return []
    where = conf.broker_url or "Celery's default broker"
    return [
        Warning(
            "Celery does not read the Django settings: the segments' tasks would go to "
            f"{where} and CELERY_TASK_ALWAYS_EAGER "
            f"({eager}) is not applied, so events would never be turned into segments.",
            hint="Add a Celery app configured from the settings (app.config_from_object("
            "'django.conf:settings', namespace='CELERY')) and import it in your project's "
            "__init__.py (docs/installation.md, 'A Celery app').",
            id="segments.W004",
        )
    ]
