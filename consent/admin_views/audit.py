"""The privacy officer's actions in Wagtail's audit log (Reports → Site history).

Exports of the consent log, exports of a visitor's data, erasures and verifications of the hash
chain are each logged with ``wagtail.log_actions.log`` under an action registered in
``wagtail_hooks`` (``register_log_actions``). The entries name the user (Wagtail records who
acted) and hold no personal data about visitors: at most the first characters of a pseudonymous
id, enough to match a request's ticket, never a whole id, a cookie, an address or an email.

They are logged against the consent log, as the content type ``consent.ConsentRecord`` (the
newest record at the time), so that whoever holds ``consent.view_consent_log`` sees them in the
site history, where Wagtail shows an entry to users with a permission on its content type.
"""

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.log_actions import LogFormatter, log

from ..models import ConsentRecord

EXPORT_LOG = "consent.export_log"
DSR_EXPORT = "consent.dsr_export"
ERASE = "consent.erase"
VERIFY = "consent.verify"

SHORT_KEY = 8  # characters of a pseudonymous id an entry may show


def short_key(key: str) -> str:
    """The first characters of a pseudonymous id, never the whole of it."""
    return key[:SHORT_KEY] + "…"


def log_privacy_action(action: str, user, title: str, data: dict) -> None:
    """Write one privacy action by ``user`` to Wagtail's audit log. ``data`` must hold no
    personal data (see the module docstring)."""
    newest = ConsentRecord.objects.order_by("-seq").only("pk").first()
    # An empty log still gets its entry: Wagtail needs an object id, and 0 is no record's.
    log(newest or ConsentRecord(pk=0), action, user=user, title=title, data=data)


class ConsentLogExported(LogFormatter):
    label = _("Export the consent log")

    def format_message(self, log_entry):
        data = log_entry.data or {}
        filters = data.get("filters") or {}
        shown = ", ".join(f"{name} {value}" for name, value in sorted(filters.items()))
        return gettext("Exported the consent log as %(format)s (%(filters)s)") % {
            "format": str(data.get("format", "?")).upper(),
            "filters": gettext("filtered by %(filters)s") % {"filters": shown}
            if shown
            else gettext("every record"),
        }


class VisitorDataExported(LogFormatter):
    label = _("Export a visitor's data")

    def format_message(self, log_entry):
        data = log_entry.data or {}
        return gettext(
            "Exported the data held about pseudonymous id %(key)s as %(format)s (%(rows)s rows)"
        ) % {
            "key": data.get("key", "?"),
            "format": str(data.get("format", "?")).upper(),
            "rows": data.get("rows", "?"),
        }


class VisitorDataErased(LogFormatter):
    label = _("Erase a visitor's data")

    def format_message(self, log_entry):
        data = log_entry.data or {}
        removed = ", ".join(
            f"{name}: {count}" for name, count in sorted((data.get("removed") or {}).items())
        )
        return gettext(
            "Erased the data held about pseudonymous id %(key)s (erasure %(erasure)s; %(removed)s)"
        ) % {
            "key": data.get("key", "?"),
            "erasure": data.get("erasure", "?"),
            "removed": removed or gettext("nothing else was held"),
        }


class ConsentLogVerified(LogFormatter):
    label = _("Verify the consent log")

    def format_message(self, log_entry):
        data = log_entry.data or {}
        return gettext(
            "Verified the consent log up to #%(head)s: %(checked)s records, %(problems)s problems"
        ) % {
            "head": data.get("head", "?"),
            "checked": data.get("checked", "?"),
            "problems": data.get("problems", "?"),
        }


FORMATTERS = {
    EXPORT_LOG: ConsentLogExported,
    DSR_EXPORT: VisitorDataExported,
    ERASE: VisitorDataErased,
    VERIFY: ConsentLogVerified,
}
