"""The examples of the documentation, run by the tests so they cannot go stale."""

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def docs_condition_example() -> dict:
    """The namespace of docs/rules.md's "Adding a condition type" example (mysite/conditions.py)."""
    text = (DOCS / "rules.md").read_text()
    code = re.search(r"```python\n(# mysite/conditions.py\n.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/rules.md", "exec"), namespace)  # noqa: S102 (our own docs)
    return namespace
