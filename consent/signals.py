"""Signals other apps connect to, so that consent never imports them.

``consent_changed`` is sent after a decision is recorded, with ``visitor_key`` (keyed hash),
``granted`` and ``denied`` (frozensets of purposes), ``notice_version`` and ``expires_at``
(an aware datetime). A withdrawal is a change whose ``granted`` lacks the purpose.
"""

from django.dispatch import Signal

consent_changed = Signal()
