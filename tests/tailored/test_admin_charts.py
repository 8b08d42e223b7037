"""The admin's server-side SVG charts (tailored.admin.charts): even axis steps, escaped text,
a data table when asked for."""

import itertools
import re

import pytest

from tailored.admin.charts import Bar, Series, XYSeries, bar_chart, line_chart, nice_ticks, xy_chart
from tailored.spreadsheet import neutralise_formula, safe_cell

XSS = '"><script>alert(1)</script>'


@pytest.mark.parametrize(
    "maximum, labels",
    [
        (0, ["0", "1"]),
        (3, ["0", "1", "2", "3"]),
        (5, ["0", "2", "4", "6"]),
        (7, ["0", "2", "4", "6", "8"]),
        (10, ["0", "5", "10"]),
        (37, ["0", "10", "20", "30", "40"]),
        (1234, ["0", "500", "1000", "1500"]),
    ],
)
def test_count_axes_step_evenly_through_nice_numbers(maximum, labels):
    assert [label for _v, label in nice_ticks(maximum, integer=True)] == labels


def test_fraction_axes_have_no_needless_decimals():
    assert [label for _v, label in nice_ticks(0.37)] == ["0", "0.1", "0.2", "0.3", "0.4"]
    assert [label for _v, label in nice_ticks(1.0, count=5)] == [
        "0",
        "0.2",
        "0.4",
        "0.6",
        "0.8",
        "1",
    ]


def test_every_step_is_the_same():
    for maximum in (1, 2, 5, 7, 9, 11, 99, 101, 0.07, 2.6, 1e6 + 1):
        values = [v for v, _label in nice_ticks(maximum)]
        steps = {round(b - a, 9) for a, b in itertools.pairwise(values)}
        assert len(steps) == 1 and values[-1] >= maximum, (maximum, values)


def test_a_line_chart_escapes_its_text_and_draws_one_line_per_series():
    chart = line_chart(
        ["01-01", XSS],
        [Series(XSS, [1, 4]), Series("Exits", [0, 2])],
        title=XSS,
        table=True,
    )
    html = str(chart)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count("<polyline") == 2 and 'role="img"' in html
    assert re.search(r"<table.*<td>4</td>.*</table>", html, re.S)  # the data table


def test_a_bar_chart_draws_a_bar_per_item_and_its_reference_line():
    chart = bar_chart(
        [Bar("decile 1", 2.1, "2.10"), Bar(XSS, 0.5, "0.50")],
        title="Lift by decile",
        reference=(1.0, "no lift"),
    )
    html = str(chart)
    assert html.count("<rect") == 2 and 'stroke-dasharray="6 3"' in html
    assert "<script>" not in html and "no lift" in html


def test_an_xy_chart_draws_lines_and_dots_with_their_notes_escaped():
    html = str(
        xy_chart(
            [
                XYSeries("ROC", [(0, 0), (0.2, 0.6), (1, 1)]),
                XYSeries("bins", [(0.5, 0.4)], dots=True, notes=[XSS]),
            ],
            title="t",
            x_label="x",
            y_label="y",
        )
    )
    assert html.count("<polyline") == 1 and html.count("<circle") == 1
    assert "<script>" not in html


def test_spreadsheet_cells_never_run_as_formulas():
    assert safe_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert safe_cell(["-1", "x"]) == "'-1 x"
    assert safe_cell(None) == ""
    assert neutralise_formula(-3) == -3  # numbers stay numbers
    assert neutralise_formula("@SUM(A1)") == "'@SUM(A1)"
