"""Who may look up one visitor: the same check for the admin screen and the REST endpoint."""

#: Editors who may see segments, and privacy officers (the privacy screens' permission).
VISITOR_PERMISSIONS = (
    "segments.view_segment",
    "segments.change_segment",
    "consent.view_consent_log",
)


def may_view_visitors(user) -> bool:
    """Whether ``user`` may see a visitor's feature values and memberships: an active user
    holding any of :data:`VISITOR_PERMISSIONS` (superusers hold them all)."""
    return bool(user and user.is_active) and any(user.has_perm(p) for p in VISITOR_PERMISSIONS)
