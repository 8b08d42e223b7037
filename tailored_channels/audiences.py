"""Mirror mode: a destination holds exactly its segments' current members (of those who grant its
purpose). Entries and exits arrive through the fan-out; the nightly reconciliation compares what
each destination holds (:class:`~tailored_channels.models.AudienceMember`) with the members in the
fast store and sends what differs (items marked ``reconciled``), repairing drift from a missed
change, a restored database or a destination created after its segments filled. File exports write
the held audience whole."""

import time

from django.utils import timezone

from consent.api import consented_keys
from segments.api import members_now

from .backends import backend_for
from .fanout import deliver_changes
from .models import AudienceMember, Destination


def current_members(slugs: set[str]) -> dict[str, set[str]]:
    """``{slug: visitor keys}`` of the segments' members now, from the fast store."""
    found: dict[str, set[str]] = {slug: set() for slug in slugs}
    for key, member_of in members_now(slugs):
        for slug in member_of:
            found[slug].add(key)
    return found


def reconcile(destination: Destination, members: dict[str, set[str]] | None = None) -> int:
    """Send ``destination`` what it lacks and what it holds too many; returns the number of
    changes sent."""
    slugs = set(destination.segments)
    if members is None:
        members = current_members(slugs)
    everyone = sorted({k for slug in slugs for k in members.get(slug, ())})
    allowed = consented_keys(everyone, destination.purpose) if everyone else set()
    wanted = {(k, slug) for slug in slugs for k in members.get(slug, ()) if k in allowed}
    held = set(
        AudienceMember.objects.filter(destination=destination, active=True).values_list(
            "visitor_key", "segment"
        )
    )
    now = time.time()
    rows = [(0, k, s, True, now) for k, s in sorted(wanted - held)]
    rows += [(0, k, s, False, now) for k, s in sorted(held - wanted)]
    sent = deliver_changes(destination, rows, reconciled=True)
    if destination.kind == Destination.Kind.FILE:
        export_destination(destination)
    return sent


def reconcile_all() -> dict[str, int]:
    destinations = list(
        Destination.objects.filter(enabled=True, mode=Destination.Mode.MIRROR).exclude(segments=[])
    )
    slugs = {s for d in destinations for s in d.segments}
    if not destinations:
        return {}
    members = current_members(slugs)
    return {d.name: reconcile(d, members) for d in destinations}


def export_destination(destination: Destination) -> str:
    return backend_for(destination).write()


def export_due() -> int:
    now = timezone.now()
    done = 0
    for destination in Destination.objects.filter(enabled=True, kind=Destination.Kind.FILE):
        hours = float(destination.options.get("every_hours") or 24)
        last = destination.last_export_at
        if last is None or (now - last).total_seconds() >= hours * 3600:
            export_destination(destination)
            done += 1
    return done
