"""Where other apps register what they hold about a visitor, so consent never imports them.

An app registers, in its ``AppConfig.ready()``:

- an **export** handler ``f(visitor_key) -> dict[str, list[dict]]``: named tables of rows;
- an **erasure** handler ``f(visitor_key, purposes) -> int``: removes what it holds (only what
  was collected under ``purposes``, or everything when ``purposes`` is empty), returns a count,
  and makes sure data arriving afterwards for that key is dropped;
- a **re-key** handler ``f(old_key, new_key) -> None``: moves data to a rotated key;
- a **retention** handler ``f(now) -> dict[str, int]``: purges what is past its retention;
- a **standing source** ``f(request, claimed) -> bool | None``: whether the server still honours
  the consent cookie the request's ``claimed`` state was read from, answered from a store the
  app reads on this request anyway (``None``: it cannot tell; consent asks its own cache);
- a **processing activity**: the categories of personal data it holds, how long it keeps
  them and who receives them, listed in the record of processing (Art. 30, consent.processing).

Handlers must be idempotent: an erasure may run again after a crash.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

Period = int | float | timedelta


@dataclass
class _Registry:
    export: dict[str, Callable] = field(default_factory=dict)
    erasure: dict[str, Callable] = field(default_factory=dict)
    rekey: dict[str, Callable] = field(default_factory=dict)
    retention: dict[str, Callable] = field(default_factory=dict)
    processing: dict[str, "ProcessingActivity"] = field(default_factory=dict)
    standing: dict[str, Callable] = field(default_factory=dict)


@dataclass(frozen=True)
class RetentionPeriod:
    """How long one kind of data is kept, as the record of processing states it.

    ``period`` is a number of seconds or a ``timedelta``, or a callable returning one: called
    each time the record is built, so a period that follows a setting reads the setting then
    (and ``override_settings`` shows). ``text`` words it, with ``%(duration)s`` standing for
    the period ("183 days"), e.g. ``"%(duration)s after the visitor's last activity"``.
    """

    data: str
    period: Period | Callable[[], Period]
    text: str = "%(duration)s"

    def seconds(self) -> int:
        period = self.period() if callable(self.period) else self.period
        if isinstance(period, timedelta):
            period = period.total_seconds()
        return int(period)


@dataclass(frozen=True)
class ProcessingActivity:
    """What one app processes about visitors: ``categories`` are ``(category, description)``
    pairs, ``retention`` a sequence of :class:`RetentionPeriod`, ``recipients`` who receives
    the data besides the controller (processors, other controllers)."""

    name: str
    categories: Sequence[tuple[str, str]] = ()
    retention: Sequence[RetentionPeriod] = ()
    recipients: Sequence[str] = ()


handlers = _Registry()


def register_export_handler(name: str, handler: Callable[[str], dict[str, list[dict]]]) -> None:
    handlers.export[name] = handler


def register_erasure_handler(name: str, handler: Callable[[str, frozenset[str]], int]) -> None:
    handlers.erasure[name] = handler


def register_rekey_handler(name: str, handler: Callable[[str, str], None]) -> None:
    handlers.rekey[name] = handler


def register_retention_handler(name: str, handler: Callable[[object], dict[str, int]]) -> None:
    handlers.retention[name] = handler


def register_standing_source(name: str, source: Callable[[object, object], bool | None]) -> None:
    handlers.standing[name] = source


def register_processing_activity(
    name: str,
    *,
    categories: Sequence[tuple[str, str]] = (),
    retention: Sequence[RetentionPeriod] = (),
    recipients: Sequence[str] = (),
) -> None:
    """List what the app ``name`` processes in the record of processing activities (GDPR
    Art. 30), after consent's own entries, in the order apps register. Registering the same
    name again replaces its entry. Texts may be lazy translations."""
    handlers.processing[name] = ProcessingActivity(
        name, tuple(categories), tuple(retention), tuple(recipients)
    )
