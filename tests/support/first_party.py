"""The suite's own installed apps, found the way a new app would be: an installed app whose
top-level package this distribution ships (``[tool.setuptools.packages.find] include`` in
pyproject.toml), so a new app is covered by the documentation tests without editing them."""

import importlib
import importlib.util
import tomllib
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ShippedApp:
    """An app the distribution ships, installed here or not (segments_ml is optional)."""

    name: str

    @property
    def label(self) -> str:
        return self.name


def shipped_apps() -> list[ShippedApp]:
    """Every app the distribution ships (a shipped top-level package with an ``apps`` module),
    whether this site installs it or not: the documentation covers them all."""
    names = [p.rstrip("*") for p in _shipped_patterns()]
    return [ShippedApp(n) for n in names if importlib.util.find_spec(f"{n}.apps") is not None]


def submodules(name: str, *, shipped: bool = False) -> list[tuple[AppConfig, ModuleType]]:
    """``(app, app.<name>)`` for every first-party app that has such a submodule: the installed
    ones, or with ``shipped`` every app the distribution ships."""
    found = []
    for config in shipped_apps() if shipped else first_party_apps():
        if importlib.util.find_spec(f"{config.name}.{name}") is not None:
            found.append((config, importlib.import_module(f"{config.name}.{name}")))
    return found
