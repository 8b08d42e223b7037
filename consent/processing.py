"""The record of processing activities (GDPR Art. 30), built from the notice in force, consent's
own settings and the activities other apps register (``register_processing_activity`` in
:mod:`consent.registry`): consent lists what it holds itself and never reads another app's
settings, so each app states its own categories and retention from its own defaults."""

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import notices
from .conf import get_setting
from .registry import RetentionPeriod, handlers


def duration(seconds: int) -> str:
    """A duration in the largest whole unit: "183 days", "1 hour"."""
    for size, singular, plural in (
        (86400, "%(n)d day", "%(n)d days"),
        (3600, "%(n)d hour", "%(n)d hours"),
        (60, "%(n)d minute", "%(n)d minutes"),
    ):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            text = ngettext(singular, plural, n) % {"n": n}
            if size == 86400 and n >= 365:
                years = f"{n / 365:.1f}".removesuffix(".0")
                text += " " + str(_("(about %(years)s years)") % {"years": years})
            return text
    return ngettext("%(n)d second", "%(n)d seconds", seconds) % {"n": seconds}


def _consent_retention() -> list[RetentionPeriod]:
    return [
        RetentionPeriod(
            _("Consent records"),
            lambda: get_setting("CONSENT_RECORD_RETENTION_DAYS") * 86400,
            _("%(duration)s after the consent ended (proof of consent, Art. 7(1))"),
        ),
        RetentionPeriod(_("Consent decision (lifetime)"), lambda: get_setting("CONSENT_MAX_AGE")),
        RetentionPeriod(
            _("Data collected under a withdrawn purpose"),
            lambda: get_setting("CONSENT_WITHDRAWAL_ERASURE_DELAY"),
            _("erased %(duration)s after the withdrawal"),
        ),
        RetentionPeriod(
            _("Data collected under a consent that expired or predates the notice in force"),
            lambda: get_setting("CONSENT_WITHDRAWAL_ERASURE_DELAY"),
            _("erased %(duration)s after the visitor's next visit (their identifier is deleted)"),
        ),
    ]


def _consent_categories() -> list[tuple[str, str]]:
    return [
        (
            _("Pseudonymous key"),
            _(
                "A keyed hash (HMAC-SHA256, 128 bits) of a random identifier held in the "
                "visitor's consent cookie. It stands for the visitor everywhere data is stored."
            ),
        ),
        (
            _("Consent records"),
            _(
                "Time, purposes granted and denied, notice version and hash, method, language, "
                "whether Global Privacy Control was sent."
            ),
        ),
        (
            _("Linked accounts"),
            _("A keyed hash of the user id of a consenting visitor who logs in."),
        ),
    ]


def processing_record() -> dict:
    """The record of processing activities, as the privacy screen shows it: the controller,
    the purposes of the notice in force, categories of data, recipients, retention periods
    (read now, from the settings of each app) and safeguards."""
    notice = notices.current()
    activities = list(handlers.processing.values())
    retention = _consent_retention() + [r for a in activities for r in a.retention]
    categories = _consent_categories() + [c for a in activities for c in a.categories]
    recipients = list(get_setting("CONSENT_RECIPIENTS"))
    recipients += [r for a in activities for r in a.recipients]
    return {
        "controller": get_setting("CONSENT_CONTROLLER"),
        "recipients": [str(r) for r in recipients],
        "notice": notice,
        "purposes": [
            {
                "code": p.get("code", ""),
                "name": p.get("name", ""),
                "description": p.get("description", ""),
                "required": p.get("required", False),
                "cookies": p.get("cookies", []),
            }
            for p in notice.purposes
        ],
        "subjects": _("Visitors of the website who grant at least one optional purpose."),
        "categories": categories,
        "retention": [
            (r.data, str(r.text) % {"duration": duration(r.seconds())}) for r in retention
        ],
        "safeguards": [
            _("Nothing is stored about a visitor before they grant a purpose that needs it."),
            _(
                "Keyed hashing: identifiers are stored only as HMAC-SHA256 hashes under a key "
                "kept outside the database."
            ),
            _("No IP addresses, email addresses or full user agents are stored."),
            _(
                "The consent log is append-only and hash-chained under a separate key; its "
                "integrity can be verified at any time."
            ),
            _("Expired data is purged daily by the retention job, and each purge is logged."),
            _(
                "Erasure reaches every store (database, fast store, event stream); access, "
                "portability and erasure are available to visitors themselves."
            ),
            _("Only staff with the permission to view the consent log see these screens."),
        ],
        "generated_at": timezone.now(),
    }
