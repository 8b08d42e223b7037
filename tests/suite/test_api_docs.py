"""docs/api.md describes every name of every app's public API (``api.py`` ``__all__``), under the
module's own heading, and nothing else there: the reference stays complete as the APIs change.
Apps are found generically (tests.first_party), so a new app's api.py is covered."""

import re

from tests.support.first_party import ROOT, submodules

API_PAGE = ROOT / "docs" / "api.md"
ENTRY = re.compile(r"^- `(?P<name>[A-Za-z_][A-Za-z0-9_]*)[(`]")


def entries() -> dict[str, list[str]]:
    """The names each ``## <module>`` heading of the page describes, in order."""
    found: dict[str, list[str]] = {}
    current = None
    for line in API_PAGE.read_text().splitlines():
        if line.startswith("## "):
            current = found.setdefault(line[3:].strip(), [])
        elif current is not None and (entry := ENTRY.match(line)):
            current.append(entry["name"])
    return found


def test_every_public_api_is_found():
    names = {module.__name__ for _config, module in submodules("api")}
    assert {"consent.api", "segments.api", "personalization.api"} <= names


def test_every_public_name_is_described_once_under_its_module():
    documented = entries()
    for _config, module in submodules("api"):
        described = documented.get(module.__name__, [])
        assert sorted(described) == sorted(module.__all__), module.__name__
        assert len(set(described)) == len(described), module.__name__


def test_every_public_name_exists():
    for _config, module in submodules("api"):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
