"""Building blocks of the suite's Wagtail admin screens, shared by every app: the permission
check with its 403 page, server-side SVG charts, a period filter, and reports whose spreadsheet
exports neutralise formulas."""
