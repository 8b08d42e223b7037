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

    One worker at a time sends to a destination, holding it for ``CHANNELS_SEND_LEASE``
    seconds from before each delivery. A ``send`` that makes several calls (one per item, say)
    may outlast that: it calls :meth:`keep_lease` before each call, which renews the hold, and
    stops as soon as it returns ``False`` (another worker has taken the destination over, or it
    was disabled), returning ``Result(ok=False, ...)``. Whatever it returns then, the delivery
    is recorded as a failed attempt and sent again, whole, by the worker that holds the
    destination, before the deliveries queued after it: an older change still on its way must
    not land after a newer one. A single call must take well under ``CHANNELS_SEND_LEASE``.
    """

    #: Set by the delivery loop for the length of each ``send``: a callable that renews this
    #: worker's hold on the destination and returns whether it still has it. Use
    #: :meth:`keep_lease` rather than calling it.
    lease_keeper = None

    def __init__(self, destination):
        self.destination = destination

    def keep_lease(self) -> bool:
        """Renew this worker's hold on the destination (at most every tenth of
        ``CHANNELS_SEND_LEASE``: cheap to call before every request) and say whether it still
        has it; ``False`` means stop sending now. Outside a delivery (an export on demand), or
        from a backend the delivery loop could not hand the lease to, always ``True``."""
        keeper = getattr(self, "lease_keeper", None)
        return True if keeper is None else bool(keeper())

    def send(self, message_id: str, kind: str, items: list[dict], created: str = "") -> Result:
        raise NotImplementedError

    def export(self, rows: list[dict]) -> None:
        """Mirror destinations that are written whole (file exports): replace the contents with
        ``rows`` (one per member and segment). Others need not implement it."""
        raise NotImplementedError
