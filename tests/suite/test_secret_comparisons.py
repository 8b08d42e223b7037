"""Secrets are compared in constant time: a MAC, signature or chain hash compared with ``==`` or
``!=`` leaks, through timing, how many leading characters of a forged value are right."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("tailored", "consent", "segments", "segments_ml", "personalization", "cms_blocks")
# Names of values that are MACs, signatures or hashes chained under a secret key.
SECRET = re.compile(r"(mac|digest|signature|record_hash|prev_hash|head_hash|last_hash)", re.I)


def _names(node: ast.AST) -> list[str]:
    found = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.append(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.append(sub.attr)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            found.append(sub.value)  # record["record_hash"]
    return found


def secret_comparisons(root: Path = ROOT) -> list[str]:
    found = []
    for app in APPS:
        for path in sorted((root / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Compare):
                    continue
                if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                    continue
                operands = [node.left, *node.comparators]
                if any(SECRET.search(name) for o in operands for name in _names(o)):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_macs_and_chain_hashes_are_compared_with_compare_digest():
    assert secret_comparisons() == []
