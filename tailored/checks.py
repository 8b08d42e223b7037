"""Helpers for the apps' system checks."""

from collections.abc import Sequence

from django.utils.module_loading import import_string


def subclass_index(class_path: str, candidate_paths: Sequence[str]) -> int:
    """The index in ``candidate_paths`` (e.g. ``MIDDLEWARE``) of ``class_path`` or of a subclass
    of it, or -1: a project may install its own subclass of a middleware. Paths that cannot be
    imported are skipped (Django's own checks report them). As
    ``django.contrib.auth.checks._subclass_index``."""
    cls = import_string(class_path)
    for index, path in enumerate(candidate_paths):
        try:
            candidate = import_string(path)
        except ImportError:
            continue
        if isinstance(candidate, type) and issubclass(candidate, cls):
            return index
    return -1
