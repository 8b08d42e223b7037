"""The record of processing activities screen (GDPR Art. 30); the content comes from
:func:`consent.processing.processing_record`, fed by each app's registrations."""

from django.utils.translation import gettext_lazy as _

from ..processing import processing_record
from .base import PrivacyView


class ProcessingRecordView(PrivacyView):
    """The record of processing activities (GDPR Art. 30), generated from configuration."""

    template_name = "consent/admin/processing.html"
    page_title = _("Record of processing")
    header_icon = "doc-full"

    def get_context_data(self, **kwargs):
        return super().get_context_data(record=processing_record(), **kwargs)
