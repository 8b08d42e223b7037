"""The interface of a destination backend."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one attempt: ``ok`` when the destination accepted every item; ``gone``
    when it said it wants nothing more (HTTP 410: the destination is disabled); ``disable``, a
    reason to disable the destination until someone fixes it (an address
    :mod:`tailored_channels.outbound` refused); ``status`` and ``response`` are kept in the
    delivery log (never anything personal: a receiver's answer is truncated to
    ``CHANNELS_RESPONSE_CHARS`` and only shown to those who manage destinations)."""

    ok: bool
    status: int | None = None
    response: str = ""
    gone: bool = False
    disable: str = ""


class BaseBackend:
    """Sends the items of a delivery to one destination.

    Each item is a dict: ``type`` (``segment.entered``, ``segment.exited``,
    ``consent.withdrawn`` or ``visitor.erased``), ``segment`` (the slug; ``None`` for the last
    two, which concern every segment of the destination), ``identifier`` (``{"type", "value"}``:
    a keyed hash unless the destination is configured for an account or email), ``at`` (ISO
    8601) and, for changes found by the nightly reconciliation, ``reconciled: true``.

    ``send`` must be idempotent (a delivery is sent again, whole, after a failure), must not
    raise for a refusal (return ``Result(ok=False, ...)``), and should be quick: it runs in a
    Celery worker, one delivery after another. ``visitor.erased`` is the destination's delete
    call: remove everything held about that identifier.

    A backend that makes HTTP requests makes them with :func:`tailored_channels.outbound.request`
    (:func:`tailored_channels.api.request`), which refuses private addresses, and returns
    ``Result(ok=False, response=exc.reason, disable=exc.reason)`` for its ``Refused``.
    """

    def __init__(self, destination):
        self.destination = destination

    def send(self, message_id: str, kind: str, items: list[dict], created: str = "") -> Result:
        raise NotImplementedError

    def export(self, rows: list[dict]) -> None:
        """Mirror destinations that are written whole (file exports): replace the contents with
        ``rows`` (one per member and segment). Others need not implement it."""
        raise NotImplementedError
