"""One settings helper (tailored.conf) behind every app's ``conf.get_setting``."""

import types

import pytest
from django.apps import apps
from django.test import override_settings

from consent import checks as consent_checks
from consent.identity import hash_key
from tailored.conf import AppSettings
from tests.support.first_party import submodules

defaults = types.ModuleType("example.defaults")
defaults.EXAMPLE_LIMIT = 3
defaults.EXAMPLE_NAMES = ["a"]
defaults.helper = "not a setting"


def test_a_setting_is_its_default_until_the_project_sets_it():
    app = AppSettings(defaults)
    assert app.get("EXAMPLE_LIMIT") == 3
    with override_settings(EXAMPLE_LIMIT=7):
        assert app.get("EXAMPLE_LIMIT") == 7
    assert app.get("EXAMPLE_LIMIT") == 3  # the remembered 7 was forgotten with the override


def test_a_setting_without_a_default_is_a_mistake_even_when_the_project_sets_it():
    app = AppSettings(defaults)
    with override_settings(EXAMPLE_TYPO=1), pytest.raises(AttributeError):
        app.get("EXAMPLE_TYPO")


def test_the_names_are_the_upper_case_names_of_the_defaults():
    assert AppSettings(defaults).names() == ["EXAMPLE_LIMIT", "EXAMPLE_NAMES"]


def _apps_with_settings():
    """The apps that declare settings (a ``defaults`` module); the foundation's own ``conf``
    is the helper itself."""
    with_defaults = {config.name for config, _module in submodules("defaults")}
    return [(config, conf) for config, conf in submodules("conf") if config.name in with_defaults]


def test_every_app_reads_its_settings_through_the_one_helper():
    found = _apps_with_settings()
    expected = {"consent", "segments", "personalization", "cms_blocks"}
    if apps.is_installed("segments_ml"):
        expected.add("segments_ml")
    assert {config.label for config, _conf in found} >= expected
    for config, conf in found:
        helper = conf.get_setting.__self__
        assert isinstance(helper, AppSettings), config.label
        assert helper.defaults.__name__ == f"{config.name}.defaults"


def test_every_app_follows_override_settings():
    for _config, conf in _apps_with_settings():
        name = conf.app_settings.names()[0]
        value = conf.get_setting(name)
        with override_settings(**{name: "overridden"}):
            assert conf.get_setting(name) == "overridden"
        assert conf.get_setting(name) == value


def test_a_derived_hash_key_can_be_allowed_outside_debug(settings):
    settings.DEBUG = False
    settings.CONSENT_HASH_KEY = ""
    with pytest.raises(RuntimeError):
        hash_key()
    assert [m.id for m in consent_checks.check_hash_key()] == ["consent.E003"]
    settings.CONSENT_ALLOW_DERIVED_HASH_KEY = True
    assert hash_key()
    assert [m.id for m in consent_checks.check_hash_key()] == ["consent.W001"]
