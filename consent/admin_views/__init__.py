"""The privacy officer's screens in the Wagtail admin (registered in ``wagtail_hooks``), one
module per screen: the consent log (:mod:`.log`), the decision counts over time
(:mod:`.decisions`), verification of the log's hash chain (:mod:`.verify`), data-subject
requests (:mod:`.requests`: export, erasure) and the record of processing activities, Art. 30
(:mod:`.processing`).

Each view parses its input, calls one function of :mod:`consent.privacy` or reads the models,
and shapes the output. Every view requires the permission ``consent.view_consent_log`` and
answers 403 without it (:class:`.base.PrivacyPermissionMixin`). The officer's exports,
erasures and verifications are written to Wagtail's audit log (:mod:`.audit`).
"""
