"""The installation guide works as written: a project freshly made with ``wagtail start``, given
exactly the quick start's blocks from docs/installation.md (read from the guide, so the guide
and this test cannot drift apart), passes every system check, migrates, and its own
``runserver`` serves a personalised page: the default to a new visitor, the variant to one who
consents and views three pages, never the variant to a script (bot detection), with the
banner, its stylesheet and the preferences page in the site's layout.

No service is needed: the quick start runs without Redis and Celery (SQLite, the embedded
backend, tasks in-process), which is what it promises.

The guide's ``pip install wagtail-tailored`` is done for real: the package is built from this
checkout (a wheel, as from PyPI) and installed into a fresh virtual environment, and every
later command runs with that environment's Python, so what the built package holds (templates,
static files, migrations, every app) is what serves the site. Only its dependencies come from
the test's own environment (added to the new one's path, so nothing is downloaded for them).
"""

import http.cookiejar
import importlib.metadata
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.builders import BROWSER_UA

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "installation.md"
BLOCK = re.compile(
    r"^<!-- quickstart: (?P<action>[^\n]*?) -->\n```[a-z]*\n(?P<code>.*?)```",
    re.DOTALL | re.MULTILINE,
)
HASH_KEY = "installation-test-hash-key-0123456789abcdef"

# What the admin steps of the guide make (a segment, the home page's personalised block),
# done by a script in the new project.
ADMIN_STEPS = """
import io
from django.core.files.images import ImageFile
from PIL import Image as PILImage
from wagtail.images import get_image_model
from home.models import HomePage
from segments.models import Segment

Segment.objects.create(
    name="Engaged",
    slug="engaged",
    rule={"type": "event_count", "event": "page_view", "min": 3, "window": "10m"},
)
data = io.BytesIO()
PILImage.new("RGB", (64, 32), "#7a1f5c").save(data, "PNG")
offer = get_image_model().objects.create(title="Offer", file=ImageFile(data, name="offer.png"))
home = HomePage.objects.get(depth=2)
home.body = [
    (
        "personalised",
        {
            "default": [("text", "<p>DEFAULT-WELCOME</p>")],
            "variants": [
                {
                    "label": "Engaged visitors",
                    "segments": ["engaged"],
                    "match": "any",
                    "content": [("text", "<p>VARIANT-WELCOME-BACK</p>"), ("image", offer)],
                }
            ],
        },
    )
]
home.save_revision().publish()
print("content ready")
"""


@dataclass
class Step:
    action: str
    code: str


def guide_steps() -> list[Step]:
    guide = GUIDE.read_text()
    steps = [Step(m["action"].strip(), m["code"]) for m in BLOCK.finditer(guide)]
    assert steps, "no quickstart blocks in docs/installation.md"
    # Every marker is followed by its code block (none is skipped unread).
    markers = re.findall(r"^<!-- quickstart:", guide, re.MULTILINE)
    assert len(steps) == len(markers), "a marker without its code block"
    return steps


# The Python of the environment the package was installed into (by the guide's pip step).
PYTHON: list[Path] = []


def python() -> Path:
    assert PYTHON, "the guide runs Python before installing the package"
    return PYTHON[-1]


def install_package(into: Path) -> Path:
    """``pip install wagtail-tailored``, from this checkout: a fresh virtual environment whose
    path also holds the test environment's packages (the dependencies, none of them this
    project's: its editable install is not activated there), then the package built as a
    wheel and installed, not linked."""
    run([sys.executable, "-m", "venv", into], into.parent)
    site = next(into.glob("lib/python*/site-packages"))
    deps = next(p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir())
    (site / "_test_dependencies.pth").write_text(f"{deps}\n")
    run(
        [into / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-deps", ROOT], into.parent
    )
    installed = run(
        [into / "bin" / "python", "-c", "import segments, cms_blocks; print(segments.__file__)"],
        into.parent,
    )
    assert str(site) in installed, f"the package is not the installed copy: {installed}"
    return into / "bin" / "python"


def project_env() -> dict[str, str]:
    # Not this checkout's path: the project runs the installed package.
    hidden = ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env["CONSENT_HASH_KEY"] = HASH_KEY
    env["DJANGO_SUPERUSER_PASSWORD"] = "install-test-password"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(args, cwd, timeout=600) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=project_env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (
        f"{shlex.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout + done.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Visitor:
    """A browser (or a script) with its own cookies, talking HTTP to the runserver."""

    def __init__(self, base: str, user_agent: str):
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.opener.addheaders = [("User-Agent", user_agent), ("Accept-Language", "en")]

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=60) as response:
            assert response.status == 200, path
            return response.read().decode()

    def accept_all(self) -> None:
        page = self.get("/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, "the banner has no form token"
        data = urllib.parse.urlencode(
            {"action": "accept_all", "csrfmiddlewaretoken": token.group(1), "next": "/"}
        ).encode()
        with self.opener.open(self.base + "/consent/", data=data, timeout=60) as response:
            assert response.status == 200  # the 303 to "/" followed


def apply(step: Step, cwd: Path) -> Path:
    """Do what one quickstart block says, as a reader would; returns the working directory."""
    action = step.action
    if action == "shell":
        for line in filter(None, (ln.strip() for ln in step.code.splitlines())):
            cwd = shell(line, cwd)
        return cwd
    if match := re.fullmatch(r"(append|write) (\S+)", action):
        verb, path = match.groups()
        target = cwd / path
        assert verb == "write" or target.is_file(), f"{path} is not in the new project"
        target.parent.mkdir(parents=True, exist_ok=True)
        before = target.read_text() if verb == "append" else ""
        target.write_text(before + ("\n" if before else "") + step.code)
        return cwd
    if match := re.fullmatch(r"insert before (\S+) in (\S+)", action):
        anchor, path = match.groups()
        target = cwd / path
        text = target.read_text()
        assert text.count(anchor) == 1, f"{anchor!r} is not once in {path}"
        target.write_text(text.replace(anchor, step.code + anchor))
        return cwd
    raise AssertionError(f"the test does not know the quickstart step {action!r}")


STARTED: list[subprocess.Popen] = []


def shell(line: str, cwd: Path) -> Path:
    words = shlex.split(line)
    if words[:2] == ["pip", "install"]:
        assert words[2:] == ["wagtail-tailored"]
        assert importlib.metadata.version("wagtail-tailored")
        PYTHON.append(install_package(cwd / "venv"))
        return cwd
    if words[0] == "cd":
        return cwd / words[1]
    if words[0] == "wagtail":  # the wagtail command of the new environment
        run([python(), "-c", "from wagtail.bin.wagtail import main; main()", *words[1:]], cwd)
        return cwd
    if words[:2] == ["python", "manage.py"]:
        command = words[2:]
        if command == ["createsuperuser"]:  # (non-interactive, with the same result)
            command += ["--noinput", "--username", "admin", "--email", "admin@example.com"]
        if command == ["runserver"]:
            STARTED.append(runserver(cwd))
            return cwd
        run([python(), "manage.py", *command], cwd)
        return cwd
    raise AssertionError(f"the test does not know the guide's command {line!r}")


def runserver(cwd: Path) -> subprocess.Popen:
    # The guide's admin steps come before anyone visits: done here by a script.
    assert "content ready" in run([python(), "manage.py", "shell", "-c", ADMIN_STEPS], cwd)
    port = free_port()
    server = subprocess.Popen(
        [python(), "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=cwd,
        env=project_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server.base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stdout.read()
        try:
            with socket.create_connection(("127.0.0.1", port), 1):
                return server
        except OSError:
            time.sleep(0.5)
    raise AssertionError("runserver did not start")


@pytest.fixture
def site(tmp_path):
    cwd = tmp_path
    try:
        for step in guide_steps():
            cwd = apply(step, cwd)
        assert STARTED, "the guide never starts the site"
        yield cwd, STARTED[-1].base
    finally:
        PYTHON.clear()
        while STARTED:
            server = STARTED.pop()
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


@pytest.mark.timeout(1200)
def test_a_fresh_wagtail_site_following_the_guide_serves_personalised_pages(site):
    project, base = site
    # Every system check passes (the guide's hash key set, as it asks).
    checks = run([python(), "manage.py", "check", "--fail-level", "WARNING"], project)
    assert "no issues" in checks, checks

    # A new visitor: the default, and the banner with its stylesheet.
    newcomer = Visitor(base, BROWSER_UA)
    page = newcomer.get("/")
    assert "DEFAULT-WELCOME" in page and "VARIANT-WELCOME-BACK" not in page
    assert 'class="consent-banner"' in page
    assert "/static/consent/consent.css" in page
    assert "/static/segments/tracker.js" in page

    # A visitor who consents and views three pages enters "Engaged" (in-process: no Redis, no
    # Celery worker) and gets the variant, image included.
    engaged = Visitor(base, BROWSER_UA)
    engaged.accept_all()  # (its redirect to "/" is the first page view)
    views = [engaged.get("/") for _ in range(3)]
    assert "VARIANT-WELCOME-BACK" in views[-1], views[-1]
    assert "DEFAULT-WELCOME" not in views[-1]
    assert re.search(r'<img [^>]*alt="Offer"', views[-1])
    assert "VARIANT-WELCOME-BACK" not in newcomer.get("/")

    # A script that consents and does the same is never recorded: default content.
    script = Visitor(base, "Python-urllib/3.11")
    script.accept_all()
    for _ in range(4):
        page = script.get("/")
    assert "DEFAULT-WELCOME" in page and "VARIANT-WELCOME-BACK" not in page

    # The stylesheet and the site's own variables; the preferences page in the site's layout.
    assert "--consent-accent" in newcomer.get("/static/consent/consent.css")
    assert "--consent-accent: #7a1f5c" in newcomer.get("/static/css/mysite.css")
    preferences = newcomer.get("/consent/preferences/")
    assert "Privacy settings" in preferences and "/static/css/mysite.css" in preferences


def test_the_guide_names_only_steps_this_test_knows():
    """Every marked block is one the installation test applies (a new kind of step in the
    guide needs the test taught it, or the guide would go untested)."""
    steps = guide_steps()
    assert steps[0].action == "shell" and "wagtail start" in steps[0].code
    assert any("runserver" in step.code for step in steps if step.action == "shell")
    for action in (step.action for step in steps):
        assert re.fullmatch(r"shell|(append|write) \S+|insert before \S+ in \S+", action), action
