"""The editors' admin screens (mounted by the viewsets in ``wagtail_hooks``), one module per
feature: the rule builder's check endpoint (:mod:`.rule_check`), previews as segments and share
links (:mod:`.preview`), and the results: segment dashboard, one segment, block reports, with
their CSV and XLSX exports (:mod:`.results`).

Each view checks its permission (see :mod:`cms_blocks.permissions`), parses its input, calls
one function and shapes the output.
"""
