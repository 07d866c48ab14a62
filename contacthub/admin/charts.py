"""Charts as server-rendered SVG: no JavaScript library, no `style` attribute.

The admin's Content-Security-Policy (`style-src 'self'`) blocks inline styles, so every colour,
size and position is an SVG presentation attribute (`fill="#4f46e5"`, `width="12.5"`), which
the policy allows; fonts come from admin.css (`.chart text`).

The markup is put together here, not in a template, so every piece of text that goes into it,
series names above all (activity types, channel names: typed by people, some from outside),
passes through `markupsafe.escape`, and numbers are formatted by this module. Hovering a bar or
a day shows a `<title>` tooltip with its exact figures; each chart is one `role="img"` with an
`aria-label` that sums it up for screen readers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

# Distinct at a glance, readable on white, and friendly to the common colour-vision deficiencies
# in their first few entries (the largest series come first).
PALETTE = (
    "#4f46e5",  # indigo
    "#0ea5e9",  # sky
    "#f59e0b",  # amber
    "#10b981",  # emerald
    "#ec4899",  # pink
    "#8b5cf6",  # violet
    "#14b8a6",  # teal
    "#ef4444",  # red
)
OTHER_COLOUR = "#94a3b8"
GRID_COLOUR = "#e4e7ef"
AXIS_COLOUR = "#c9cde0"
TRACK_COLOUR = "#eef0ff"
MAX_SERIES = 8
OTHER_NAME = "Other"

# viewBox widths: the chart scales to its card, so a chart drawn about as wide as it is shown
# keeps its text near the 11px of admin.css. WIDE fills a page-wide card, NARROW half of one.
WIDE = 1000
NARROW = 520
HEIGHT = 240
LEFT = 44
RIGHT = 8
TOP = 10
BOTTOM = 24
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM
MAX_BAR_WIDTH = 28
MAX_X_LABELS = 8
Y_TICKS = 4


@dataclass(frozen=True, slots=True)
class ChartSeries:
    """A named count per day, one value for each of the chart's days."""

    name: str
    values: Sequence[int]
    colour: str | None = None  # None: the palette's next colour

    @property
    def total(self) -> int:
        return sum(self.values)


def _attributes(attributes: dict[str, object]) -> str:
    # Attribute names are this module's own constants; values are escaped, quotes included.
    return "".join(
        f' {name}="{escape(value)}"' for name, value in attributes.items() if value is not None
    )


def _element(tag: str, attributes: dict[str, object], *children: str | Markup) -> Markup:
    """`<tag …>children</tag>`: text children are escaped, Markup children kept as they are."""
    inner = "".join(str(escape(child)) for child in children)
    return Markup(f"<{tag}{_attributes(attributes)}>{inner}</{tag}>")  # noqa: S704


def _void(tag: str, attributes: dict[str, object]) -> Markup:
    return Markup(f"<{tag}{_attributes(attributes)}/>")  # noqa: S704


def _number(value: float) -> str:
    """A coordinate, short: 2 decimals at most."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _count(value: int) -> str:
    return f"{value:,}"


def _compact(value: int) -> str:
    """An axis label: 950, 1.2k, 12k, 3.4M."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if value >= size:
            text = f"{value / size:.1f}".removesuffix(".0")
            return f"{text}{suffix}"
    return str(value)


def _day(day: date, with_year: bool) -> str:
    return f"{day.day} {day:%b %Y}" if with_year else f"{day.day} {day:%b}"


def _axis_top(maximum: int) -> tuple[int, int]:
    """A round top for the y axis and the step between its gridlines (whole numbers)."""
    if maximum <= 0:
        return Y_TICKS, 1
    raw = maximum / Y_TICKS
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    whole = max(1, math.ceil(step))
    return whole * math.ceil(maximum / whole), whole


def _y(value: int, top: int) -> float:
    return TOP + PLOT_HEIGHT - value / top * PLOT_HEIGHT


def _frame(days: Sequence[date], top: int, step: int, width: int) -> list[Markup]:
    """Gridlines with their y labels, the baseline, and a few day labels under it."""
    parts = _grid(top, step, width)
    if days:
        with_year = days[0].year != days[-1].year
        every = max(1, math.ceil(len(days) / MAX_X_LABELS))
        labels = [_day(day, with_year) if i % every == 0 else "" for i, day in enumerate(days)]
        parts += _x_labels(labels, width)
    return parts


def _grid(top: int, step: int, width: int) -> list[Markup]:
    """Gridlines with their y labels, and the baseline."""
    parts: list[Markup] = []
    for value in range(0, top + 1, step):
        y = _number(_y(value, top))
        parts.append(
            _void(
                "line",
                {
                    "x1": LEFT,
                    "x2": width - RIGHT,
                    "y1": y,
                    "y2": y,
                    "stroke": AXIS_COLOUR if value == 0 else GRID_COLOUR,
                    "stroke-width": 1,
                },
            )
        )
        parts.append(
            _element(
                "text",
                {"x": LEFT - 6, "y": y, "text-anchor": "end", "dominant-baseline": "middle"},
                _compact(value),
            )
        )
    return parts


def _x_labels(labels: Sequence[str], width: int) -> list[Markup]:
    """A label under each slot that has one (empty: none)."""
    slot = (width - LEFT - RIGHT) / max(1, len(labels))
    return [
        _element(
            "text",
            {"x": _number(LEFT + slot * (index + 0.5)), "y": HEIGHT - 6, "text-anchor": "middle"},
            text,
        )
        for index, text in enumerate(labels)
        if text
    ]


def _svg(label: str, parts: Sequence[Markup], width: int) -> Markup:
    return _element(
        "svg",
        {
            "class": "chart",
            "viewBox": f"0 0 {width} {HEIGHT}",
            "role": "img",
            "aria-label": label,
            "preserveAspectRatio": "xMidYMid meet",
        },
        *parts,
    )


def _empty_note(parts: list[Markup], message: str, width: int) -> None:
    parts.append(
        _element(
            "text",
            {
                "class": "chart-empty",
                "x": _number((LEFT + width - RIGHT) / 2),
                "y": TOP + PLOT_HEIGHT / 2,
                "text-anchor": "middle",
                "dominant-baseline": "middle",
                # A white halo keeps the note readable over the gridline behind it.
                "stroke": "#fff",
                "stroke-width": 6,
                "stroke-linejoin": "round",
                "paint-order": "stroke",
            },
            message,
        )
    )


def _swatch(colour: str) -> Markup:
    return _element(
        "svg",
        {
            "class": "swatch",
            "viewBox": "0 0 10 10",
            "width": 10,
            "height": 10,
            "aria-hidden": "true",
            "focusable": "false",
        },
        _void("rect", {"width": 10, "height": 10, "rx": 3, "fill": colour}),
    )


def _legend(entries: Sequence[tuple[str, str, int]]) -> Markup:
    """The legend under a chart: colour, name and total of each series."""
    items = [
        _element(
            "li",
            {},
            _swatch(colour),
            _element("span", {"class": "name"}, name),
            _element("span", {"class": "total"}, _count(total)),
        )
        for name, colour, total in entries
    ]
    return _element("ul", {"class": "legend"}, *items)


def fold_series(series: Sequence[ChartSeries], limit: int = MAX_SERIES) -> list[ChartSeries]:
    """At most `limit` series: the first `limit - 1` and, summed up, the rest as "Other"."""
    if len(series) <= limit:
        return list(series)
    kept, rest = list(series[: limit - 1]), series[limit - 1 :]
    length = max(len(s.values) for s in rest)
    other = [sum(s.values[i] for s in rest if i < len(s.values)) for i in range(length)]
    return [*kept, ChartSeries(OTHER_NAME, other, OTHER_COLOUR)]


def _colours(series: Sequence[ChartSeries]) -> list[str]:
    return [s.colour or PALETTE[index % len(PALETTE)] for index, s in enumerate(series)]


def stacked_bars(
    days: Sequence[date],
    series: Sequence[ChartSeries],
    *,
    label: str,
    unit: str = "activities",
    empty: str = "Nothing in this range.",
    width: int = WIDE,
) -> Markup:
    """A bar per day, stacked by series (the first at the bottom), with its legend.

    More than `MAX_SERIES` series are folded: the smallest ones sum up as "Other".
    """
    shown = fold_series(series)
    colours = _colours(shown)
    totals = [sum(s.values[i] for s in shown) for i in range(len(days))]
    top, step = _axis_top(max(totals, default=0))
    parts = _frame(days, top, step, width)
    slot = (width - LEFT - RIGHT) / max(1, len(days))
    bar_width = min(MAX_BAR_WIDTH, slot * 0.72 if slot >= 4 else slot)
    for index, day in enumerate(days):
        x = LEFT + slot * index
        lines = [f"{_day(day, True)}: {_count(totals[index])} {unit}"]
        lines += [f"{s.name}: {_count(s.values[index])}" for s in shown if s.values[index] > 0]
        # A transparent column under the bar catches the pointer over the whole day.
        bar: list[str | Markup] = [
            _element("title", {}, "\n".join(lines)),
            _void(
                "rect",
                {
                    "x": _number(x),
                    "y": TOP,
                    "width": _number(slot),
                    "height": PLOT_HEIGHT,
                    "fill": "#000",
                    "fill-opacity": 0,
                },
            ),
        ]
        base = 0
        for s, colour in zip(shown, colours, strict=True):
            value = s.values[index]
            if value <= 0:
                continue
            y_top, y_bottom = _y(base + value, top), _y(base, top)
            bar.append(
                _void(
                    "rect",
                    {
                        "x": _number(x + (slot - bar_width) / 2),
                        "y": _number(y_top),
                        "width": _number(bar_width),
                        "height": _number(y_bottom - y_top),
                        "fill": colour,
                    },
                )
            )
            base += value
        parts.append(_element("g", {"class": "bar"}, *bar))
    grand_total = sum(totals)
    if grand_total == 0:
        _empty_note(parts, empty, width)
    summary = f"{label}: {_count(grand_total)} {unit}"
    if days:
        summary += f" from {_day(days[0], True)} to {_day(days[-1], True)}"
    if grand_total:
        summary += ". " + ", ".join(f"{s.name}: {_count(s.total)}" for s in shown if s.total)
    chart = _svg(summary, parts, width)
    if not shown:
        return chart
    return chart + _legend([(s.name, c, s.total) for s, c in zip(shown, colours, strict=True)])


def area_chart(
    days: Sequence[date],
    values: Sequence[int],
    *,
    label: str,
    unit: str,
    empty: str = "Nothing in this range.",
    colour: str = PALETTE[0],
    width: int = WIDE,
) -> Markup:
    """One count per day as a line over a soft area, each day with its exact figure on hover."""
    top, step = _axis_top(max(values, default=0))
    parts = _frame(days, top, step, width)
    slot = (width - LEFT - RIGHT) / max(1, len(days))
    points = [(LEFT + slot * (index + 0.5), _y(value, top)) for index, value in enumerate(values)]
    total = sum(values)
    if total > 0:
        line = " ".join(f"{_number(x)},{_number(y)}" for x, y in points)
        baseline = _number(_y(0, top))
        area = (
            f"M{_number(points[0][0])},{baseline} L{line.replace(' ', ' L')} "
            f"L{_number(points[-1][0])},{baseline} Z"
        )
        parts.append(_void("path", {"d": area, "fill": colour, "fill-opacity": 0.12}))
        parts.append(
            _void(
                "polyline",
                {
                    "points": line,
                    "fill": "none",
                    "stroke": colour,
                    "stroke-width": 2,
                    "stroke-linejoin": "round",
                    "stroke-linecap": "round",
                },
            )
        )
    for index, (day, value) in enumerate(zip(days, values, strict=True)):
        x, y = points[index]
        point: list[str | Markup] = [
            _element("title", {}, f"{_day(day, True)}: {_count(value)} {unit}"),
            _void(
                "rect",
                {
                    "x": _number(LEFT + slot * index),
                    "y": TOP,
                    "width": _number(slot),
                    "height": PLOT_HEIGHT,
                    "fill": "#000",
                    "fill-opacity": 0,
                },
            ),
        ]
        if len(days) <= 62 and value > 0:
            point.append(
                _void(
                    "circle",
                    {"cx": _number(x), "cy": _number(y), "r": 2.5, "fill": colour},
                )
            )
        parts.append(_element("g", {"class": "point"}, *point))
    if total == 0:
        _empty_note(parts, empty, width)
    summary = f"{label}: {_count(total)} {unit}"
    if days:
        summary += f" from {_day(days[0], True)} to {_day(days[-1], True)}"
    return _svg(summary, parts, width)


def meter(count: int, maximum: int) -> Markup:
    """A thin bar, as long as `count` is to `maximum`: the bar of a ranked list's row.

    Decorative (the row shows the number itself), so hidden from screen readers.
    """
    share = 0.0 if maximum <= 0 else max(0.0, min(1.0, count / maximum))
    return _element(
        "svg",
        {
            "class": "meter",
            "viewBox": "0 0 100 6",
            "preserveAspectRatio": "none",
            "aria-hidden": "true",
            "focusable": "false",
        },
        _void("rect", {"width": 100, "height": 6, "fill": TRACK_COLOUR}),
        _void("rect", {"width": _number(share * 100), "height": 6, "fill": PALETTE[0]}),
    )


def line_chart(
    labels: Sequence[str],
    tooltips: Sequence[str],
    series: Sequence[ChartSeries],
    *,
    label: str,
    empty: str = "Nothing in this range.",
    divider: tuple[int, str] | None = None,
    width: int = WIDE,
) -> Markup:
    """A line per series over slots of any kind (hours, days), with its legend.

    `labels` go under the slots (empty: no label), `tooltips` name each slot in its hover text,
    which lists every series' figure there. `divider` draws a dashed line before a slot, with a
    note (where the slots change from hours to days, say).
    """
    colours = _colours(series)
    top, step = _axis_top(max((max(s.values, default=0) for s in series), default=0))
    parts = _grid(top, step, width) + _x_labels(labels, width)
    slot = (width - LEFT - RIGHT) / max(1, len(labels))
    if divider is not None and 0 < divider[0] < len(labels):
        x = _number(LEFT + slot * divider[0])
        parts.append(
            _void(
                "line",
                {
                    "x1": x,
                    "x2": x,
                    "y1": TOP,
                    "y2": TOP + PLOT_HEIGHT,
                    "stroke": AXIS_COLOUR,
                    "stroke-width": 1,
                    "stroke-dasharray": "4 3",
                },
            )
        )
        parts.append(_element("text", {"x": x, "y": TOP + 10, "dx": 4}, divider[1]))
    for s, colour in zip(series, colours, strict=True):
        if s.total == 0:
            continue
        points = " ".join(
            f"{_number(LEFT + slot * (i + 0.5))},{_number(_y(v, top))}"
            for i, v in enumerate(s.values)
        )
        parts.append(
            _void(
                "polyline",
                {
                    "points": points,
                    "fill": "none",
                    "stroke": colour,
                    "stroke-width": 2,
                    "stroke-linejoin": "round",
                    "stroke-linecap": "round",
                },
            )
        )
    for index, name in enumerate(tooltips):
        lines = [name, *(f"{s.name}: {_count(s.values[index])}" for s in series)]
        parts.append(
            _element(
                "g",
                {"class": "point"},
                _element("title", {}, "\n".join(lines)),
                _void(
                    "rect",
                    {
                        "x": _number(LEFT + slot * index),
                        "y": TOP,
                        "width": _number(slot),
                        "height": PLOT_HEIGHT,
                        "fill": "#000",
                        "fill-opacity": 0,
                    },
                ),
            )
        )
    grand_total = sum(s.total for s in series)
    if grand_total == 0:
        _empty_note(parts, empty, width)
    summary = f"{label}: " + ", ".join(f"{s.name}: {_count(s.total)}" for s in series)
    chart = _svg(summary, parts, width)
    if not series:
        return chart
    return chart + _legend([(s.name, c, s.total) for s, c in zip(series, colours, strict=True)])
