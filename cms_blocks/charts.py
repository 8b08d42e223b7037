"""Small SVG charts laid out on the server (no JavaScript): coordinates are preformatted
strings, so templates never localise them, and every label is escaped by the template."""

from dataclasses import dataclass

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 704, 16, 208
PALETTE = ["#007d7e", "#c2410c", "#1d4ed8", "#a21caf", "#a16207", "#0e7490", "#57534e"]
DASHES = ["", "7 4", "2 3", "9 3 2 3", "4 2", "1 3", "12 4"]


@dataclass(frozen=True)
class Line:
    label: str
    colour: str
    dash: str
    points: str


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    lines: list[Line]
    y_ticks: list[tuple[int, str]]
    x_ticks: list[tuple[str, str]]


def _nice_max(value: int) -> int:
    if value <= 5:
        return 5
    step = 10 ** (len(str(value)) - 1)
    return ((value + step - 1) // step) * step


def line_chart(labels: list[str], series: dict[str, list[int]]) -> LineChart:
    """One line per series over the same x labels (days)."""
    top = _nice_max(max((max(v) for v in series.values() if v), default=0))
    n = max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return LEFT + (RIGHT - LEFT) * i / n

    def y(v: int) -> float:
        return BOTTOM - (BOTTOM - TOP) * v / top

    lines = [
        Line(
            label,
            PALETTE[i % len(PALETTE)],
            DASHES[i % len(DASHES)],
            " ".join(f"{x(j):.1f},{y(v):.1f}" for j, v in enumerate(values)),
        )
        for i, (label, values) in enumerate(series.items())
    ]
    y_ticks = [(top * k // 4, f"{y(top * k / 4):.1f}") for k in range(5)]
    every = max(len(labels) // 6, 1)
    x_ticks = [(labels[i], f"{x(i):.1f}") for i in range(0, len(labels), every)]
    return LineChart(WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM, lines, y_ticks, x_ticks)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    shown: str
    width: str
    y: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    label_width: int
    bars: list[Bar]


def bar_chart(items: list[tuple[str, float, str]], label_width: int = 260) -> BarChart:
    """Horizontal bars: (label, value, value as shown)."""
    top = max((v for _label, v, _shown in items), default=0) or 1
    room = WIDTH - label_width - 80
    bars = [
        Bar(label, value, shown, f"{room * value / top:.1f}", f"{8 + i * 24}")
        for i, (label, value, shown) in enumerate(items)
    ]
    return BarChart(WIDTH, 16 + 24 * len(items), label_width, bars)
