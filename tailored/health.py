"""Liveness and readiness, for load balancers, orchestrators and monitoring.

*Liveness* says the process answers: no dependency is consulted, so a database or Redis outage
never gets healthy processes restarted. *Readiness* runs every registered check, each timed,
and is ready when every critical one passes. The foundation checks the database and that every
migration is applied; other apps register their own checks from their ``ready()``
(``segments`` registers the fast store and the workers' heartbeat), so this module names none.

A check is ``f() -> dict`` (details to report: small, never personal data) and fails by
raising; only the exception's type is reported, since a message may quote data. A check that
is not *critical* is reported but does not make the process unready (a worker outage should
not take the web processes out of a load balancer).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

Check = Callable[[], dict]


class CheckFailed(Exception):
    """Raised by a check that ran but found the service unfit (with a short, fixed reason)."""


@dataclass(frozen=True)
class _Registered:
    check: Check
    critical: bool


_checks: dict[str, _Registered] = {}
_migrated: set[str] = set()  # database aliases seen fully migrated (that does not go back)


def register_readiness_check(name: str, check: Check, *, critical: bool = True) -> None:
    """Add (or replace, by name: ``ready()`` may run twice) a readiness check."""
    _checks[name] = _Registered(check, critical)


def unregister_readiness_check(name: str) -> None:
    _checks.pop(name, None)


def database() -> dict:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def migrations() -> dict:
    """Every migration applied. Loading the migration graph takes tens of milliseconds, so a
    process that has once seen the database fully migrated does not look again."""
    if DEFAULT_DB_ALIAS in _migrated:
        return {}
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    unapplied = len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    if unapplied:
        raise CheckFailed(f"{unapplied} unapplied")
    _migrated.add(DEFAULT_DB_ALIAS)
    return {}


register_readiness_check("database", database)
register_readiness_check("migrations", migrations)


def readiness() -> tuple[bool, dict[str, dict]]:
    """Run every check: ``(ready, {name: {"ok", "critical", "ms", ...details or "error"}})``."""
    results: dict[str, dict] = {}
    ready = True
    for name, registered in list(_checks.items()):
        started = time.perf_counter()
        try:
            details = registered.check() or {}
            ok = True
        except CheckFailed as exc:
            details, ok = {"error": str(exc)}, False
        except Exception as exc:  # a failed dependency must answer 503, never 500
            details, ok = {"error": type(exc).__name__}, False
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        ok = ok and details.pop("ok", True)
        results[name] = {"ok": ok, "critical": registered.critical, "ms": elapsed, **details}
        ready = ready and (ok or not registered.critical)
    return ready, results
