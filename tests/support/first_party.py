"""The suite's own installed apps, found the way a new app would be: an installed app whose
top-level package this distribution ships (``[tool.setuptools.packages.find] include`` in
pyproject.toml), so a new app is covered by the documentation tests without editing them."""

import importlib
import importlib.util
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from types import ModuleType

from django.apps import AppConfig, apps

ROOT = Path(__file__).resolve().parents[2]


def _shipped_patterns() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return pyproject["tool"]["setuptools"]["packages"]["find"]["include"]


def first_party_apps() -> list[AppConfig]:
    patterns = _shipped_patterns()
    return [
        config
        for config in apps.get_app_configs()
        if any(fnmatch(config.name.partition(".")[0], p) for p in patterns)
    ]


def submodules(name: str) -> list[tuple[AppConfig, ModuleType]]:
    """``(app, app.<name>)`` for every first-party app that has such a submodule."""
    found = []
    for config in first_party_apps():
        if importlib.util.find_spec(f"{config.name}.{name}") is not None:
            found.append((config, importlib.import_module(f"{config.name}.{name}")))
    return found
