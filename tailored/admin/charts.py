"""Small SVG charts laid out on the server, for every admin screen of the suite.

Why on the server: no JavaScript, no external resources, no change to a Content Security
Policy, and nothing a chart library would add that these screens need. Every text in a chart
(segment and cluster names come from editors or data) is escaped by ``format_html``; numbers
are formatted here, so a template never localises a coordinate. Each chart is a ``<figure>``
whose ``<svg>`` has ``role="img"`` and a title; pass ``table=True`` for a data table with the
same numbers under the chart (a screen that already shows them in its own table leaves it off).

Three kinds: :func:`line_chart` (values over days or checks), :func:`bar_chart` (one
horizontal bar per item) and :func:`xy_chart` (curves and points on the unit square: ROC,
calibration). Value axes start at 0 and step evenly through "nice" numbers (1, 2 or 5 times a
power of ten): 0, 2, 4, 6 or 0, 5, 10, never 0, 1, 2, 3, 5.

Use in a template: ``{{ chart }}`` (a :class:`Chart` renders itself), with the styles of
``tailored/admin/charts.css`` (``{% include "tailored/admin/_chart_css.html" %}``).
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext

# Colours readable on the admin's light and dark themes; the dash patterns tell series apart
# without colour.
PALETTE = ("#007a5a", "#c2410c", "#1d4ed8", "#a21caf", "#a16207", "#0e7490", "#57534e")
DASHES = ("", "7 4", "2 3", "9 3 2 3", "4 2", "1 3", "12 4")
REFERENCE_COLOUR = "#c62828"
FONT_SIZE = 11
MAX_X_LABELS = 8
MAX_MARKERS = 62  # more points than this and the markers would merge into the line

Tick = tuple[float, str]


def nice_ticks(maximum: float, *, count: int = 4, integer: bool = False) -> list[Tick]:
    """Ticks (value, label) from 0 to the first multiple of a nice step at or above
    ``maximum``, with about ``count`` steps. The step is 1, 2 or 5 times a power of ten (at
    least 1 when ``integer``); labels carry no needless decimals ("0.5", "10")."""
    top = max(float(maximum), 0.0) or 1.0
    raw = top / count
    exponent = math.floor(math.log10(raw))
    mantissa = next(m for m in (1, 2, 5, 10) if m * 10.0**exponent >= raw * (1 - 1e-9))
    if mantissa == 10:
        mantissa, exponent = 1, exponent + 1
    if integer and exponent < 0:
        mantissa, exponent = 1, 0
    step = Decimal(mantissa).scaleb(exponent)
    steps = math.ceil(Decimal(repr(top)) / step)
    return [(float(step * i), _decimal_label(step * i)) for i in range(steps + 1)]


def _decimal_label(value: Decimal) -> str:
    return f"{value.normalize():f}" if value else "0"


def percent_tick(tick: Tick) -> str:
    """A tick of a 0-1 axis worded as a percentage, exactly: its label is the decimal the step
    made ("0.005"), so 0.5% stays 0.5% (rounding the float to whole percents would give
    "0%, 0%, 1%, 2%, 2%" on a small axis)."""
    return f"{_decimal_label(Decimal(tick[1]) * 100)}%"


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


def _f(value: float) -> str:
    """A coordinate: one decimal, whatever the active locale."""
    return f"{value:.1f}"


@dataclass(frozen=True)
class Series:
    """One line of a :func:`line_chart`. Without ``colour`` and ``dash`` it takes the
    palette's next ones; ``key`` becomes the series' ``data-key`` attribute."""

    label: str
    values: Sequence[float]
    colour: str = ""
    dash: str = ""
    key: str = ""


@dataclass(frozen=True)
class Bar:
    """One bar of a :func:`bar_chart`: ``shown`` is the value as the screen words it."""

    label: str
    value: float
    shown: str = ""


@dataclass(frozen=True)
class XYSeries:
    """Points on the unit square, drawn as a line or as dots (each dot with ``notes[i]`` as
    its tooltip, when given)."""

    label: str
    points: Sequence[tuple[float, float]]
    dots: bool = False
    colour: str = ""
    notes: Sequence[str] = ()


@dataclass(frozen=True)
class Chart:
    """A laid-out chart: ``{{ chart }}`` renders it, escaped."""

    title: str
    width: int
    height: int
    body: SafeString
    legend: list[tuple[str, str, str]] = field(default_factory=list)  # label, colour, dash
    table: SafeString | None = None
    css_class: str = ""

    def __html__(self) -> SafeString:
        svg = format_html(
            '<svg class="tailored-chart__svg" width="{}" height="{}" viewBox="0 0 {} {}" '
            'role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg"><title>{}</title>'
            "{}</svg>",
            self.width,
            self.height,
            self.width,
            self.height,
            self.title,
            self.title,
            self.body,
        )
        legend = format_html_join(
            "",
            '<li><svg width="28" height="10" viewBox="0 0 28 10" aria-hidden="true" '
            'focusable="false"><line x1="1" x2="27" y1="5" y2="5" stroke="{}" '
            'stroke-width="3"{}/></svg> {}</li>',
            ((colour, _dash_attr(dash), label) for label, colour, dash in self.legend),
        )
        return format_html(
            '<figure class="tailored-chart{}">{}<figcaption>'
            '<span class="tailored-chart__title">{}</span>{}</figcaption>{}</figure>',
            f" {self.css_class}" if self.css_class else "",
            svg,
            self.title,
            format_html('<ul class="tailored-chart__legend">{}</ul>', legend) if legend else "",
            self.table or "",
        )

    def __str__(self) -> str:
        return self.__html__()


def _dash_attr(dash: str) -> SafeString:
    return format_html(' stroke-dasharray="{}"', dash) if dash else SafeString("")


def _data_table(
    caption: str, headings: Sequence[str], rows: Sequence[Sequence[object]]
) -> SafeString:
    """The chart's numbers as a table, folded under the chart."""
    head = format_html_join("", '<th scope="col">{}</th>', ((h,) for h in headings))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        (
            (
                format_html(
                    '<th scope="row">{}</th>{}',
                    row[0],
                    format_html_join("", "<td>{}</td>", ((v,) for v in row[1:])),
                ),
            )
            for row in rows
        ),
    )
    return format_html(
        '<details class="tailored-chart__data"><summary>{}</summary><table class="listing">'
        "<caption>{}</caption><thead><tr>{}</tr></thead><tbody>{}</tbody></table></details>",
        caption,
        caption,
        head,
        body,
    )


def _table_caption(title: str) -> str:
    return gettext("Data of the chart: %(title)s") % {"title": title}


def _y_grid(
    ticks: list[Tick], left: float, right: float, y: Callable[[float], float]
) -> SafeString:
    lines = format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}"/>',
        ((_f(left), _f(right), _f(y(v)), _f(y(v))) for v, _label in ticks),
    )
    labels = format_html_join(
        "",
        '<text x="{}" y="{}" dy="4">{}</text>',
        ((_f(left - 6), _f(y(v)), label) for v, label in ticks),
    )
    return format_html(
        '<g stroke="currentColor" stroke-opacity="0.2" stroke-width="1">{}</g>'
        '<g fill="currentColor" font-size="{}" text-anchor="end" aria-hidden="true">{}</g>',
        lines,
        FONT_SIZE,
        labels,
    )


# -- line charts -------------------------------------------------------------------------------
def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    width: int = 760,
    height: int = 300,
    markers: bool | None = None,
    reference: tuple[float, str] | None = None,
    integer: bool = True,
    table: bool = False,
    signed: bool = False,
) -> Chart:
    """One line per series over the same x labels (days, weeks, checks). ``markers``: a dot
    on each value (by default while there are at most 62); ``reference``: (value, label) of a
    dashed horizontal line, such as a threshold; ``integer``: the values are counts;
    ``signed``: values may be negative (a lift and its interval): the axis then also runs
    below 0, by the same nice steps as above it."""
    left, right, top, bottom = 48, width - 16, 16, height - 36
    highest = max((max(s.values, default=0) for s in series), default=0)
    lowest = min((min(s.values, default=0) for s in series), default=0) if signed else 0
    if reference is not None:
        highest = max(highest, reference[0])
    ticks = nice_ticks(max(highest, -lowest), integer=integer)
    if lowest < 0:  # as many steps below 0 and above it as the values need
        step = ticks[1][0]
        down = min(math.ceil(-lowest / step - 1e-9), len(ticks) - 1)
        up = min(max(math.ceil(highest / step - 1e-9), 1), len(ticks) - 1)
        ticks = [(-ticks[i][0], f"-{ticks[i][1]}") for i in range(down, 0, -1)] + ticks[: up + 1]
    y_min, y_max = ticks[0][0], ticks[-1][0]
    n = len(labels)

    def x(i: int) -> float:
        return (left + right) / 2 if n <= 1 else left + (right - left) * i / (n - 1)

    def y(v: float) -> float:
        return bottom - (bottom - top) * (v - y_min) / (y_max - y_min)

    if markers is None:
        markers = n <= MAX_MARKERS
    every = max(1, math.ceil(n / MAX_X_LABELS))
    x_labels = format_html_join(
        "",
        '<text x="{}" y="{}">{}</text>',
        ((_f(x(i)), bottom + 18, label) for i, label in enumerate(labels) if i % every == 0),
    )
    lines = []
    legend = []
    for i, s in enumerate(series):
        if s.colour:
            colour, dash = s.colour, s.dash
        else:
            colour, dash = PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)]
        points = [(_f(x(j)), _f(y(v))) for j, v in enumerate(s.values)]
        dots = (
            format_html_join(
                "",
                '<circle cx="{}" cy="{}" r="3" fill="{}"/>',
                ((px, py, colour) for px, py in points),
            )
            if markers
            else ""
        )
        lines.append(
            format_html(
                '<g class="tailored-chart__series" data-key="{}"><polyline fill="none" '
                'stroke="{}" stroke-width="2" stroke-linejoin="round"{} points="{}"/>{}</g>',
                s.key,
                colour,
                _dash_attr(dash),
                " ".join(f"{px},{py}" for px, py in points),
                dots,
            )
        )
        legend.append((s.label, colour, dash))
    ref = ""
    if reference is not None:
        ref = format_html(
            '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}" stroke-dasharray="6 3"/>',
            left,
            right,
            _f(y(reference[0])),
            _f(y(reference[0])),
            REFERENCE_COLOUR,
        )
        legend.append((reference[1], REFERENCE_COLOUR, "6 3"))
    body = format_html(
        '{}<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="currentColor" stroke-opacity="0.6"/>'
        '<g fill="currentColor" font-size="{}" text-anchor="middle" aria-hidden="true">{}</g>'
        "{}{}",
        _y_grid(ticks, left, right, y),
        left,
        right,
        bottom,
        bottom,
        FONT_SIZE,
        x_labels,
        ref,
        format_html_join("", "{}", ((line,) for line in lines)),
    )
    data = None
    if table:
        data = _data_table(
            _table_caption(title),
            ["", *(s.label for s in series)],
            [(label, *(_number(s.values[i]) for s in series)) for i, label in enumerate(labels)],
        )
    return Chart(title, width, height, body, legend, data)


# -- bar charts --------------------------------------------------------------------------------
def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    width: int = 720,
    label_width: int = 260,
    reference: tuple[float, str] | None = None,
    tick_label: Callable[[Tick], str] | None = None,
    integer: bool = False,
    table: bool = False,
) -> Chart:
    """One horizontal bar per item, longest label cut at 40 characters, the value as shown
    at the bar's end, a value axis underneath (``tick_label`` words its ticks, e.g. as
    percentages) and an optional dashed ``reference`` (value, label)."""
    row, top = 24, 8
    axis = top + row * len(bars) + 4
    height = axis + 24
    left, right = label_width, width - 72
    highest = max((b.value for b in bars), default=0)
    if reference is not None:
        highest = max(highest, reference[0])
    ticks = nice_ticks(highest, integer=integer)
    x_max = ticks[-1][0]

    def x(v: float) -> float:
        return left + (right - left) * v / x_max

    rects = format_html_join(
        "",
        '<text x="{}" y="{}" dy="13" text-anchor="end" fill="currentColor">{}</text>'
        '<rect x="{}" y="{}" width="{}" height="16" fill="{}"><title>{}: {}</title></rect>'
        '<text x="{}" y="{}" dy="13" fill="currentColor">{}</text>',
        (
            (
                left - 8,
                top + i * row,
                b.label if len(b.label) <= 40 else b.label[:39] + "…",
                left,
                top + i * row,
                _f(x(b.value) - left),
                PALETTE[0],
                b.label,
                b.shown or _number(b.value),
                _f(x(b.value) + 6),
                top + i * row,
                b.shown or _number(b.value),
            )
            for i, b in enumerate(bars)
        ),
    )
    grid = format_html_join(
        "",
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="currentColor" stroke-opacity="0.2"/>'
        '<text x="{}" y="{}" text-anchor="middle" fill="currentColor" aria-hidden="true">{}'
        "</text>",
        (
            (
                _f(x(v)),
                _f(x(v)),
                top,
                axis,
                _f(x(v)),
                axis + 16,
                tick_label((v, label)) if tick_label else label,
            )
            for v, label in ticks
        ),
    )
    legend = []
    ref = ""
    if reference is not None:
        ref = format_html(
            '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}" stroke-dasharray="6 3"/>',
            _f(x(reference[0])),
            _f(x(reference[0])),
            top - 4,
            axis,
            REFERENCE_COLOUR,
        )
        legend.append((reference[1], REFERENCE_COLOUR, "6 3"))
    body = format_html(
        '<g font-size="{}">{}</g><g font-size="12">{}</g>{}', FONT_SIZE, grid, rects, ref
    )
    data = None
    if table:
        data = _data_table(
            _table_caption(title),
            ["", title],
            [(b.label, b.shown or _number(b.value)) for b in bars],
        )
    return Chart(title, width, height, body, legend, data)


# -- curves and points on the unit square ------------------------------------------------------
def xy_chart(
    series: Sequence[XYSeries],
    *,
    title: str,
    x_label: str,
    y_label: str,
    diagonal: bool = True,
    width: int = 320,
    height: int = 260,
    table: bool = False,
) -> Chart:
    """Lines or dots with both axes from 0 to 1 (ticks every 0.2), with the dashed diagonal
    (a random model's ROC curve, perfect calibration) unless ``diagonal`` is off."""
    left, right, top, bottom = 44, width - 12, 12, height - 40
    ticks = nice_ticks(1.0, count=5)

    def x(v: float) -> float:
        return left + (right - left) * min(max(v, 0.0), 1.0)

    def y(v: float) -> float:
        return bottom - (bottom - top) * min(max(v, 0.0), 1.0)

    x_ticks = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="middle">{}</text>',
        ((_f(x(v)), bottom + 14, label) for v, label in ticks),
    )
    shapes = []
    legend = []
    for i, s in enumerate(series):
        colour = s.colour or PALETTE[(i + 2) % len(PALETTE)]
        if s.dots:
            notes = list(s.notes) or [f"{_number(px)}, {_number(py)}" for px, py in s.points]
            shapes.append(
                format_html_join(
                    "",
                    '<circle cx="{}" cy="{}" r="4" fill="{}"><title>{}</title></circle>',
                    (
                        (_f(x(px)), _f(y(py)), colour, note)
                        for (px, py), note in zip(s.points, notes, strict=False)
                    ),
                )
            )
        else:
            shapes.append(
                format_html(
                    '<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>',
                    colour,
                    " ".join(f"{_f(x(px))},{_f(y(py))}" for px, py in s.points),
                )
            )
        legend.append((s.label, colour, ""))
    diag = (
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="currentColor" '
            'stroke-dasharray="4 4" stroke-opacity="0.5"/>',
            left,
            bottom,
            right,
            top,
        )
        if diagonal
        else ""
    )
    body = format_html(
        '{}<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="currentColor" '
        'stroke-opacity="0.4"/><g fill="currentColor" font-size="{}" aria-hidden="true">{}</g>'
        '<g font-size="{}" fill="currentColor" text-anchor="middle"><text x="{}" y="{}">{}</text>'
        '<text x="12" y="{}" transform="rotate(-90 12 {})">{}</text></g>{}{}',
        _y_grid(ticks, left, right, y),
        left,
        top,
        right - left,
        bottom - top,
        FONT_SIZE,
        x_ticks,
        FONT_SIZE,
        _f((left + right) / 2),
        height - 6,
        x_label,
        _f((top + bottom) / 2),
        _f((top + bottom) / 2),
        y_label,
        diag,
        format_html_join("", "{}", ((shape,) for shape in shapes)),
    )
    data = None
    if table:
        data = _data_table(
            _table_caption(title),
            [str(x_label), str(y_label)] if len(series) == 1 else ["", x_label, y_label],
            [
                (_number(px), _number(py))
                if len(series) == 1
                else (s.label, _number(px), _number(py))
                for s in series
                for px, py in s.points
            ],
        )
    return Chart(title, width, height, body, legend, data)
