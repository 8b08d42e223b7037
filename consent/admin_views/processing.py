"""The record of processing activities (GDPR Art. 30), generated from configuration."""

from django.apps import apps
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import notices
from ..conf import get_setting
from .base import PrivacyView


def _duration(seconds: int) -> str:
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


def processing_record() -> dict:
    """The record of processing activities, from the notice in force and the settings.

    The segments app's settings are read through ``django.conf.settings`` with their defaults:
    consent never imports the layers above it.
    """
    notice = notices.current()
    behaviour = apps.is_installed("segments")
    retention = [
        (
            _("Consent records"),
            _("%(duration)s after the consent ended (proof of consent, Art. 7(1))")
            % {"duration": _duration(get_setting("CONSENT_RECORD_RETENTION_DAYS") * 86400)},
        ),
        (_("Consent decision (lifetime)"), _duration(get_setting("CONSENT_MAX_AGE"))),
        (
            _("Data collected under a withdrawn purpose"),
            _("erased %(duration)s after the withdrawal")
            % {"duration": _duration(get_setting("CONSENT_WITHDRAWAL_ERASURE_DELAY"))},
        ),
    ]
    if behaviour:
        # Defaults of segments/defaults.py and of the segments backends' PROFILE_TTL option.
        event_days = getattr(settings, "SEGMENTS_EVENT_RETENTION_DAYS", 395)
        options = getattr(settings, "SEGMENTS_BACKEND", {}).get("OPTIONS", {})
        profile_ttl = int(options.get("PROFILE_TTL", 400 * 86400))
        retention += [
            (_("Events (page views and actions)"), _duration(event_days * 86400)),
            (
                _("Features and segment memberships"),
                _("%(duration)s after the visitor's last activity")
                % {"duration": _duration(profile_ttl)},
            ),
        ]
    categories = [
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
    if behaviour:
        categories += [
            (
                _("Events"),
                _(
                    "Pages viewed (path without query string) and actions, campaign parameters, "
                    "referring host name, device class, time."
                ),
            ),
            (_("Features"), _("Counters and scores derived from the events.")),
            (_("Segments"), _("Audience segments the visitor currently belongs to.")),
        ]
    return {
        "controller": get_setting("CONSENT_CONTROLLER"),
        "recipients": [str(r) for r in get_setting("CONSENT_RECIPIENTS")],
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
        "retention": retention,
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


class ProcessingRecordView(PrivacyView):
    """The record of processing activities (GDPR Art. 30), generated from configuration."""

    template_name = "consent/admin/processing.html"
    page_title = _("Record of processing")
    header_icon = "doc-full"

    def get_context_data(self, **kwargs):
        return super().get_context_data(record=processing_record(), **kwargs)
