"""Signals other apps connect to, so that consent never imports them.

``consent_changed`` is sent after a decision is recorded, with ``visitor_key`` (keyed hash),
``granted`` and ``denied`` (frozensets of purposes), ``notice_version`` and ``expires_at``
(an aware datetime). A withdrawal is a change whose ``granted`` lacks the purpose.

``consents_recorded`` is sent once per recorded batch of the same decision (one visitor, or the
many of an import's ``--assume-consent``), before the batch's ``consent_changed``, with
``visitor_keys`` (a tuple) and the same other arguments: a receiver that does per-visitor work
in the database or the fast store does it for the whole batch at once there, instead of once per
visitor (an import of 4,000 visitors otherwise spends most of its time in receivers).
"""

from django.dispatch import Signal

consent_changed = Signal()
consents_recorded = Signal()
