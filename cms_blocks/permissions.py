"""Who may do what in the editors' screens. Three separate permissions, given to groups in
Settings → Groups:

- managing segments: the segment snippet's ``segments.add_segment`` / ``change_segment`` /
  ``delete_segment`` (the rule builder's check endpoint needs add or change);
- viewing results: ``cms_blocks.view_results`` (segment dashboard, block reports, CSV);
- privacy screens: ``consent.view_consent_log`` (see docs/privacy-admin.md).

Previewing a page as segments and making share links needs permission to edit that page.
"""

VIEW_RESULTS = "cms_blocks.view_results"


def can_edit_segments(user) -> bool:
    return user.has_perm("segments.add_segment") or user.has_perm("segments.change_segment")


def can_view_results(user) -> bool:
    return user.has_perm(VIEW_RESULTS)


def can_preview_page(user, page) -> bool:
    return page.permissions_for_user(user).can_edit()
