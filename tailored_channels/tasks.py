"""Celery tasks of the channels app: ids in, one function called (the logic is in the modules)."""

from celery import shared_task


@shared_task(name="tailored_channels.fan_out", acks_late=True)
def fan_out() -> int:
    from .fanout import fan_out as run

    read, more = run()
    if more:  # hand over to a fresh task
        fan_out.delay()
    return read


@shared_task(name="tailored_channels.deliver", acks_late=True)
def deliver(destination_id: int, follow: bool = True) -> int:
    from .delivery import Busy
    from .delivery import deliver as run

    try:
        attempted, more = run(destination_id)
    except Busy:
        # The worker sending may be finishing just before our deliveries were committed: look
        # again shortly, once (deliver_due sweeps up anything left after that).
        if follow:
            deliver.apply_async((destination_id, False), countdown=2)
        return 0
    if more:  # hand over to a fresh task (others get a turn on this worker)
        deliver.delay(destination_id)
    return attempted


@shared_task(name="tailored_channels.deliver_due")
def deliver_due() -> int:
    from .delivery import due_destinations

    found = due_destinations()
    for destination_id in found:
        deliver.delay(destination_id)
    return len(found)


@shared_task(name="tailored_channels.reconcile", acks_late=True)
def reconcile() -> dict:
    from .audiences import reconcile_all

    return reconcile_all()


@shared_task(name="tailored_channels.reconcile_one", acks_late=True)
def reconcile_one(destination_id: int) -> int:
    from .api import reconcile as run

    return run(destination_id)


@shared_task(name="tailored_channels.export_due")
def export_due() -> int:
    from .audiences import export_due as run

    return run()


@shared_task(name="tailored_channels.export", acks_late=True)
def export(destination_id: int) -> None:
    from .audiences import export_destination
    from .models import Destination

    destination = Destination.objects.filter(pk=destination_id).first()
    if destination is not None:
        export_destination(destination)


@shared_task(name="tailored_channels.follow_ups")
def follow_ups() -> int:
    from .triggers import send_due

    return send_due()
