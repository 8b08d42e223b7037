"""Spreadsheet cells that a spreadsheet program will not run as formulas ("CSV injection").

A cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets when a CSV file is opened, and visitor-supplied
text (a language tag, a segment name, a page path) can reach every export. The usual defence
(OWASP) is a leading apostrophe, which makes the cell text. Pure: no Django.
"""

from typing import Any

#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: Any) -> Any:
    """``value`` with a leading apostrophe if it is text a spreadsheet would run as a formula;
    anything else (numbers, dates, None) unchanged, so a spreadsheet still sees -3 as a number."""
    if isinstance(value, str) and value[:1] in FORMULA_PREFIXES:
        return "'" + value
    return value


def safe_cell(value: Any) -> str:
    """One CSV cell as text: lists joined by spaces, None as empty, formulas neutralised."""
    if isinstance(value, list | tuple):
        text = " ".join(str(v) for v in value)
    else:
        text = "" if value is None else str(value)
    return neutralise_formula(text)
