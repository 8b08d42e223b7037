"""Celery tasks of the consent app: arguments are ids, never personal data."""

from celery import shared_task
from django.utils import timezone

from . import privacy
from .models import ErasureRequest


@shared_task(name="consent.process_erasure", acks_late=True, ignore_result=True)
def process_erasure(request_id: int) -> None:
    """Carry out one erasure request once it is due (idempotent)."""
    request = ErasureRequest.objects.filter(pk=request_id).first()
    if request is None or request.due_at > timezone.now():
        return  # not due yet (an early delivery): the periodic sweep picks it up
    privacy.run_erasure(request_id)


@shared_task(name="consent.process_due_erasures", ignore_result=True)
def process_due_erasures() -> int:
    """Celery beat: run erasures that are due (safety net for lost or early tasks)."""
    return privacy.run_due_erasures()


@shared_task(name="consent.retention", ignore_result=True)
def retention() -> dict[str, int]:
    """Celery beat (daily): purge events, features and consent records past retention."""
    return privacy.run_retention()
