"""Where other apps register what they hold about a visitor, so consent never imports them.

An app registers, in its ``AppConfig.ready()``:

- an **export** handler ``f(visitor_key) -> dict[str, list[dict]]``: named tables of rows;
- an **erasure** handler ``f(visitor_key, purposes) -> int``: removes what it holds (only what
  was collected under ``purposes``, or everything when ``purposes`` is empty), returns a count,
  and makes sure data arriving afterwards for that key is dropped;
- a **re-key** handler ``f(old_key, new_key) -> None``: moves data to a rotated key;
- a **retention** handler ``f(now) -> dict[str, int]``: purges what is past its retention.

Handlers must be idempotent: an erasure may run again after a crash.
"""

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Registry:
    export: dict[str, Callable] = field(default_factory=dict)
    erasure: dict[str, Callable] = field(default_factory=dict)
    rekey: dict[str, Callable] = field(default_factory=dict)
    retention: dict[str, Callable] = field(default_factory=dict)


handlers = _Registry()


def register_export_handler(name: str, handler: Callable[[str], dict[str, list[dict]]]) -> None:
    handlers.export[name] = handler


def register_erasure_handler(name: str, handler: Callable[[str, frozenset[str]], int]) -> None:
    handlers.erasure[name] = handler


def register_rekey_handler(name: str, handler: Callable[[str, str], None]) -> None:
    handlers.rekey[name] = handler


def register_retention_handler(name: str, handler: Callable[[object], dict[str, int]]) -> None:
    handlers.retention[name] = handler
