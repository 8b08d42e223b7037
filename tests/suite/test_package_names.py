"""The suite's top-level packages and app labels must not be taken by another package a Django
or Wagtail site may install beside it: two distributions with one top-level package overwrite
each other's files in site-packages, and two apps with one label stop Django from starting.
(The channels app was first called ``channels``, which is Django Channels' package and label.)"""

import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from django.apps import apps

ROOT = Path(__file__).resolve().parents[2]

# Top-level packages and app labels of widely installed Django and Wagtail packages.
TAKEN = {
    "allauth",
    "axes",
    "channels",  # Django Channels
    "compressor",
    "cookie_consent",
    "corsheaders",
    "crispy_forms",
    "daphne",
    "debug_toolbar",
    "django_celery_beat",
    "django_celery_results",
    "django_extensions",
    "django_filters",
    "guardian",
    "health_check",
    "import_export",
    "modelcluster",
    "oauth2_provider",
    "personalisation",  # wagtail-personalisation's label
    "polymorphic",
    "rest_framework",
    "reversion",
    "simple_history",
    "storages",
    "taggit",
    "treebeard",
    "wagtail_ab_testing",
    "wagtail_personalisation",
    "wagtailmenus",
    "webpack_loader",
}


def _our_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    names = {p.rstrip("*") for p in patterns}
    return {name for name in names if (ROOT / name / "__init__.py").exists()}


def test_no_top_level_package_is_another_distributions():
    ours = _our_packages()
    assert "segments" in ours and "tailored_channels" in ours
    assert ours.isdisjoint(TAKEN), sorted(ours & TAKEN)
    # Nor one that an installed distribution other than ours provides.
    provided = packages_distributions()
    others = {
        name: dists
        for name in ours
        if (dists := set(provided.get(name, ())) - {"wagtail-tailored", "wagtail_tailored"})
    }
    assert others == {}


def test_no_app_label_is_another_packages():
    ours = {
        config.label
        for config in apps.get_app_configs()
        if config.name.split(".")[0] in _our_packages()
    }
    assert "tailored_channels" in ours
    assert ours.isdisjoint(TAKEN), sorted(ours & TAKEN)
