"""Verification of the consent log's hash chain, on request."""

import logging

from django.utils.translation import gettext_lazy as _

from ..models import ChainHead
from ..privacy import verify_log
from . import audit
from .base import PrivacyView

logger = logging.getLogger(__name__)


class VerifyView(PrivacyView):
    """Run :func:`consent.privacy.verify_log` on request (POST) and show the outcome."""

    template_name = "consent/admin/verify.html"
    page_title = _("Verify the consent log")
    header_icon = "success"

    def post(self, request, *args, **kwargs):
        checked, problems = verify_log()
        head = ChainHead.objects.filter(pk=1).first()
        logger.info(
            "Consent log verified by user %s: %d records, %d problems",
            request.user.pk,
            checked,
            len(problems),
        )
        audit.log_privacy_action(
            audit.VERIFY,
            request.user,
            title=str(_("Consent log")),
            data={
                "checked": checked,
                "problems": len(problems),
                "head": head.last_seq if head else 0,
            },
        )
        context = self.get_context_data(
            verified=True, checked=checked, problems=[str(p) for p in problems], head=head
        )
        return self.render_to_response(context)
