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


def test_percentage_axes_step_evenly_and_say_each_value_once():
    """A 0-1 axis worded as percentages (the results' click and conversion rates): small rates
    once read "0%, 0%, 1%, 2%, 2%"."""
    from decimal import Decimal

    from tailored.admin.charts import percent_tick

    for maximum in [i / 10000 for i in range(1, 10001, 7)] + [0.02, 0.005, 1.0]:
        labels = [percent_tick(t) for t in nice_ticks(maximum)]
        values = [Decimal(label.rstrip("%")) for label in labels]
        steps = {b - a for a, b in itertools.pairwise(values)}
        assert len(set(labels)) == len(labels) and len(steps) == 1, (maximum, labels)
    assert [percent_tick(t) for t in nice_ticks(0.02)] == ["0%", "0.5%", "1%", "1.5%", "2%"]
    assert [percent_tick(t) for t in nice_ticks(0.37)] == ["0%", "10%", "20%", "30%", "40%"]


def test_a_bar_chart_words_its_axis_with_the_tick_labeller():
    from tailored.admin.charts import percent_tick

    html = str(bar_chart([Bar("a", 0.012, "1.2%")], title="Rates", tick_label=percent_tick))
    axis = re.findall(r'aria-hidden="true">([^<]+)</text>', html)
    assert axis == ["0%", "0.5%", "1%", "1.5%"]


def test_a_signed_line_chart_runs_below_zero_by_the_same_steps():
    chart = line_chart(
        ["a", "b", "c"],
        [Series("lift", [-12.0, 5.0, 31.0]), Series("low", [-40.0, -20.0, 2.0])],
        title="Lift",
        integer=False,
        signed=True,
        reference=(0.0, "No effect"),
    )
    html = str(chart)
    labels = re.findall(r'dy="4">([^<]+)</text>', html)
    assert labels == ["-40", "-30", "-20", "-10", "0", "10", "20", "30", "40"]
    # Without signed, an axis starts at 0 as before.
    unsigned = str(line_chart(["a"], [Series("n", [3.0])], title="N"))
    assert re.findall(r'dy="4">([^<]+)</text>', unsigned)[0] == "0"
    # Every point lies inside the plot.
    ys = [float(y) for y in re.findall(r'cy="([0-9.-]+)"', html)]
    assert all(16 <= y <= 300 - 36 for y in ys)
