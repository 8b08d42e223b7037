"""The demo's templates without the plugin, derived from the current ones at run time.

"The same Wagtail page without the plugin" is the demo's page rendered from its own templates
with everything the plugin adds taken out: the plugin's template tags (consent banner, Consent
Mode signals...), its scripts and URLs, ``data-track`` attributes and the element listing
``request.segments``. Deriving them on each run keeps the baseline in step with the templates
other people edit; if a template starts using a plugin feature this module cannot take out, the
run stops and says what to update here rather than measuring a wrong baseline.

The wagtail-personalisation variant is the plain page plus a list of the visitor's segments (as
wagtail-personalisation stores them), where the demo lists ``request.segments``.
"""

import hashlib
import os
import re
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
# Project templates a page view of the demo uses (the consent app's own pages are not pages).
PAGE_TEMPLATES = ("base.html", "home")
PLUGIN_APPS = ("consent", "segments", "personalization", "cms_blocks")
REQUEST_ATTRIBUTES = ("segments", "consent", "personalization")

WP_SEGMENTS = (
    '<span class="segments" data-testid="segments">Your segments: '
    "{% for s in request.segment_adapter.get_segments %}<b>{{ s.name }}</b> "
    "{% empty %}none{% endfor %}</span>\n  "
)


class TemplateDrift(RuntimeError):
    """A demo template uses a plugin feature that bench/pages.py does not know how to remove."""


def plugin_libraries() -> dict[str, set[str]]:
    """Template tag libraries of the plugin's apps and the tags/filters each defines."""
    libraries: dict[str, set[str]] = {}
    for app in PLUGIN_APPS:
        for module in sorted((ROOT / app / "templatetags").glob("*.py")):
            if module.name == "__init__.py":
                continue
            source = module.read_text()
            names = set(re.findall(r"@register\.\w+\([^)]*\)\s*\ndef (\w+)", source))
            names |= set(re.findall(r"@register\.\w+\s*\ndef (\w+)", source))
            names |= set(re.findall(r"name=['\"](\w+)['\"]", source))
            names |= set(re.findall(r"register\.(?:tag|simple_tag|filter)\(\s*['\"](\w+)", source))
            libraries[module.stem] = names
    return libraries


def strip_plugin(text: str, libraries: dict[str, set[str]]) -> str:
    tags = set().union(*libraries.values()) if libraries else set()

    def load(match: re.Match) -> str:
        kept = [n for n in match.group(1).split() if n not in libraries]
        return "{% load " + " ".join(kept) + " %}" if kept else ""

    text = re.sub(r"\{%\s*load\s+([^%]*?)\s*%\}", load, text)
    if tags:
        alternatives = "|".join(sorted(map(re.escape, tags)))
        text = re.sub(r"[ \t]*\{%\s*(?:" + alternatives + r")\b[^%]*%\}[ \t]*\n?", "", text)
    apps = "|".join(PLUGIN_APPS)
    # <script> elements loading the plugin's static files or calling its URLs.
    text = re.sub(
        r"[ \t]*<script\b[^>]*(?:static\s+'(?:" + apps + r")/|url\s+'(?:" + apps + r"):)"
        r"[^>]*>\s*</script>[ \t]*\n?",
        "",
        text,
    )
    # The (one-line) element showing what the plugin put on the request.
    attrs = "|".join(REQUEST_ATTRIBUTES)
    text = re.sub(
        r"[ \t]*<(\w+)\b[^>\n]*>[^\n]*?request\.(?:" + attrs + r")\b[^\n]*?</\1>[ \t]*\n?",
        "",
        text,
    )
    text = re.sub(r'\s+data-track[\w-]*="[^"]*"', "", text)
    return text


def _leftovers(text: str, libraries: dict[str, set[str]]) -> list[str]:
    found = []
    for lib, names in libraries.items():
        if re.search(r"\{%\s*load\b[^%]*\b" + re.escape(lib) + r"\b", text):
            found.append(f"{{% load {lib} %}}")
        for name in names:
            if re.search(
                r"(\{%\s*" + re.escape(name) + r"\b)|(\|\s*" + re.escape(name) + r"\b)", text
            ):
                found.append(name)
    for attr in REQUEST_ATTRIBUTES:
        if re.search(r"request\." + attr + r"\b", text):
            found.append(f"request.{attr}")
    for app in PLUGIN_APPS:
        if re.search(r"(static|url)\s+'" + app + r"[/:]", text):
            found.append(f"{app} static file or URL")
    return found


def _sources() -> list[tuple[str, str]]:
    files = []
    for entry in PAGE_TEMPLATES:
        path = TEMPLATES / entry
        paths = sorted(path.rglob("*.html")) if path.is_dir() else [path]
        files += [(str(p.relative_to(TEMPLATES)), p.read_text()) for p in paths]
    return files


def derive(kind: str = "plain") -> Path:
    """Write the derived templates ("plain" or "wp") to a temporary directory; return it."""
    libraries = plugin_libraries()
    sources = _sources()
    digest = hashlib.sha256(repr((kind, sources, sorted(libraries))).encode()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / "tailored-bench-templates" / f"{kind}-{digest}"
    problems = []
    derived = []
    for name, text in sources:
        plain = strip_plugin(text, libraries)
        left = _leftovers(plain, libraries)
        if left:
            problems.append(f"{name}: {', '.join(sorted(set(left)))}")
        if kind == "wp" and name == "base.html":
            anchor = "</header>" if "</header>" in plain else "</body>"
            plain = plain.replace(anchor, WP_SEGMENTS + anchor, 1)
        derived.append((name, plain))
    if problems:
        raise TemplateDrift(
            "The demo's templates use plugin features bench/pages.py cannot take out for the "
            "baseline page: " + "; ".join(problems)
        )
    for name, text in derived:
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(text)
            tmp.replace(path)
    return target
