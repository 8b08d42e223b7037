"""The channels app's public Python API: for a site's own destinations and code."""

from .backends.base import BaseBackend, Result
from .outbound import Failed, Refused, request
from .signing import new_secret

__all__ = [
    "BaseBackend",
    "Failed",
    "Refused",
    "Result",
    "export_destination",
    "new_secret",
    "reconcile",
    "request",
]


def reconcile(destination_id: int) -> int:
    """Make one mirror destination hold exactly its segments' members now (what the nightly
    reconciliation does for every one); returns the number of changes sent."""
    from .audiences import reconcile as run
    from .models import Destination

    return run(Destination.objects.get(pk=destination_id))


def export_destination(destination_id: int) -> str:
    """Write a file destination's export now; returns its path in the export storage."""
    from .audiences import export_destination as run
    from .models import Destination

    return run(Destination.objects.get(pk=destination_id))
