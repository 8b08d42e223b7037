"""docs/settings.md lists every setting of every app's ``defaults.py``, under the app's own
heading, with its default and meaning; and no page of the docs names a setting that does not
exist. Apps are found generically (tests.first_party), so a new app's settings are covered."""

import re

from tests.support.first_party import ROOT, submodules

SETTINGS_PAGE = ROOT / "docs" / "settings.md"
ROW = re.compile(r"^\| `(?P<name>[A-Z][A-Z0-9_]*)` \| (?P<default>[^|]+) \| (?P<meaning>[^|]+) \|$")


def declared() -> dict[str, list[str]]:
    """Each app's label and the settings its defaults.py declares."""
    return {
        config.label: sorted(name for name in vars(module) if name.isupper())
        for config, module in submodules("defaults", shipped=True)
    }


def sections() -> dict[str, dict[str, tuple[str, str]]]:
    """The rows of each ``## <heading>`` of the settings page: name -> (default, meaning)."""
    found: dict[str, dict[str, tuple[str, str]]] = {}
    current = None
    for line in SETTINGS_PAGE.read_text().splitlines():
        if line.startswith("## "):
            current = found.setdefault(line[3:].strip(), {})
        elif current is not None and (row := ROW.match(line)):
            current[row["name"]] = (row["default"].strip(), row["meaning"].strip())
    return found


def test_every_app_with_settings_is_found():
    assert {"consent", "segments", "personalization", "cms_blocks"} <= set(declared())


def test_every_setting_is_documented_under_its_apps_heading():
    documented = sections()
    missing = [
        f"{label}: {name}"
        for label, names in declared().items()
        for name in names
        if name not in documented.get(label, {})
    ]
    assert missing == []


def test_every_documented_setting_has_a_default_and_a_meaning():
    for label, rows in sections().items():
        for name, (default, meaning) in rows.items():
            assert default and meaning, f"{label}: {name}"


# Settings an earlier release read, named in the docs only to say what replaced them (and by a
# system check that refuses them).
REPLACED = {"CONSENT_RATE_LIMIT", "CONSENT_RATE_LIMIT_WINDOW"}


def _test_environment():
    """Environment variables the test suite and the benchmarks read (docs/testing.md names
    them): not settings, though they share the TAILORED_ prefix."""
    read = re.compile(r"""environ(?:\.get|\.setdefault)?[(\[]\s*["']([A-Z0-9_]+)["']""")
    sources = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    return {name for path in sources for name in read.findall(path.read_text())}


def test_the_docs_name_no_setting_that_does_not_exist():
    apps = declared()
    known = {name for names in apps.values() for name in names} | REPLACED | _test_environment()
    prefixes = "|".join(re.escape(label.upper()) for label in sorted(apps, key=len, reverse=True))
    setting_like = re.compile(rf"\b(?:{prefixes})_[A-Z0-9_]*[A-Z0-9]\b")
    pages = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    unknown = [
        f"{page.relative_to(ROOT)}: {name}"
        for page in pages
        for name in sorted(set(setting_like.findall(page.read_text())) - known)
    ]
    assert unknown == []


def test_the_settings_page_documents_only_settings_of_the_app_it_is_listed_under():
    apps = declared()
    misplaced = [
        f"{label}: {name}"
        for label, rows in sections().items()
        for name in rows
        if name not in apps.get(label, [])
    ]
    assert misplaced == []
