"""The SVG charts: well-formed, escaped, allowed by the CSP, and honest about empty data."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

from markupsafe import Markup

from contacthub.admin import charts

SVG = "{http://www.w3.org/2000/svg}"
DAYS = [date(2024, 5, 1) + timedelta(days=n) for n in range(3)]
HOSTILE = '<script>alert("x")</script>'


def parse(markup: str) -> ET.Element:
    """The chart (and its legend) as XML: it must be well-formed."""
    # The text is this module's own chart, not outside input.
    return ET.fromstring(f'<root xmlns="http://www.w3.org/2000/svg">{markup}</root>')  # noqa: S314


def svg_of(root: ET.Element) -> ET.Element:
    found = root.find(f"{SVG}svg")
    assert found is not None
    return found


def titles(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}title")]


def test_stacked_bars_show_every_day_with_exact_figures() -> None:
    chart = charts.stacked_bars(
        DAYS,
        [charts.ChartSeries("Page visits", [1200, 0, 3]), charts.ChartSeries("Clicks", [5, 0, 0])],
        label="Activities by type",
    )

    assert isinstance(chart, Markup)
    root = parse(chart)
    svg = svg_of(root)
    assert svg.get("role") == "img"
    assert svg.get("aria-label") == (
        "Activities by type: 1,208 activities from 1 May 2024 to 3 May 2024. "
        "Page visits: 1,203, Clicks: 5"
    )
    assert titles(root) == [
        "1 May 2024: 1,205 activities\nPage visits: 1,200\nClicks: 5",
        "2 May 2024: 0 activities",
        "3 May 2024: 3 activities\nPage visits: 3",
    ]
    # One coloured rect per non-zero value, in the series' colours; axis labels are compact.
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("fill") in charts.PALETTE]
    colours = [r.get("fill") for r in bars]
    assert colours.count(charts.PALETTE[0]) == 2 + 1  # two bars and the legend swatch
    assert colours.count(charts.PALETTE[1]) == 1 + 1
    labels = [t.text for t in svg.iter(f"{SVG}text")]
    # A round top above the highest bar (1,205), gridlines at round steps.
    assert labels == ["0", "500", "1k", "1.5k", "1 May", "2 May", "3 May"]
    legend = root.find(f"{SVG}ul")
    assert legend is not None
    assert "".join(legend.itertext()) == "Page visits1,203Clicks5"


def test_bar_heights_follow_the_values() -> None:
    chart = charts.stacked_bars(DAYS, [charts.ChartSeries("Visits", [10, 20, 40])], label="Visits")
    heights = [
        float(r.get("height", "0"))
        for r in svg_of(parse(chart)).iter(f"{SVG}rect")
        if r.get("fill") == charts.PALETTE[0]
    ]
    assert heights[1] == 2 * heights[0]
    assert heights[2] == 4 * heights[0]
    assert max(heights) <= charts.PLOT_HEIGHT


def test_hostile_series_names_are_escaped_everywhere() -> None:
    chart = str(
        charts.stacked_bars(
            DAYS, [charts.ChartSeries(HOSTILE, [1, 2, 3])], label=f"Activities {HOSTILE}"
        )
    )

    assert "<script" not in chart
    assert "&lt;script&gt;" in chart
    assert 'aria-label="Activities &lt;script&gt;alert(&#34;x&#34;)' in chart
    root = parse(chart)
    assert HOSTILE in "".join(root.itertext())  # shown as text, never as markup
    assert HOSTILE in svg_of(root).get("aria-label", "")


def test_no_style_attributes_and_no_scripts() -> None:
    markup = str(
        charts.stacked_bars(DAYS, [charts.ChartSeries("A", [1, 2, 3])], label="A")
        + charts.area_chart(DAYS, [1, 2, 3], label="New contacts", unit="new contacts")
        + charts.meter(3, 4)
    )
    assert "style=" not in markup
    assert "<script" not in markup
    assert " on" not in re.sub(r'"[^"]*"', '""', markup)  # no event handler attributes


def test_empty_data_says_so() -> None:
    for chart in (
        charts.stacked_bars(DAYS, [], label="Activities by type", empty="No activities."),
        charts.stacked_bars(
            DAYS, [charts.ChartSeries("Clicks", [0, 0, 0])], label="x", empty="No activities."
        ),
        charts.area_chart(DAYS, [0, 0, 0], label="New contacts", unit="x", empty="No activities."),
        charts.stacked_bars([], [], label="Nothing", empty="No activities."),
        charts.area_chart([], [], label="Nothing", unit="x", empty="No activities."),
    ):
        root = parse(chart)
        svg = svg_of(root)
        assert [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "chart-empty"] == [
            "No activities."
        ]
        # Still a chart with its gridlines, and no bar or line anywhere.
        assert list(svg.iter(f"{SVG}line"))
        assert not [r for r in svg.iter(f"{SVG}rect") if r.get("fill") in charts.PALETTE]
        assert not list(svg.iter(f"{SVG}circle"))
    assert parse(charts.stacked_bars(DAYS, [], label="x")).find(f"{SVG}ul") is None


def test_many_series_fold_into_other() -> None:
    series = [charts.ChartSeries(f"type{n}", [10 - n]) for n in range(11)]

    chart = charts.stacked_bars(DAYS[:1], series, label="Activities")

    legend = parse(chart).find(f"{SVG}ul")
    assert legend is not None
    names = [s.text for s in legend.iter(f"{SVG}span") if s.get("class") == "name"]
    assert names == [*(f"type{n}" for n in range(charts.MAX_SERIES - 1)), "Other"]
    totals = [s.text for s in legend.iter(f"{SVG}span") if s.get("class") == "total"]
    assert totals[-1] == str(3 + 2 + 1 + 0)
    assert [r.get("fill") for r in legend.iter(f"{SVG}rect")][-1] == charts.OTHER_COLOUR


def test_area_chart_has_a_tooltip_per_day_and_a_line() -> None:
    chart = charts.area_chart(DAYS, [4, 0, 2], label="New contacts", unit="new contacts")

    root = parse(chart)
    assert titles(root) == [
        "1 May 2024: 4 new contacts",
        "2 May 2024: 0 new contacts",
        "3 May 2024: 2 new contacts",
    ]
    svg = svg_of(root)
    assert svg.get("aria-label") == "New contacts: 6 new contacts from 1 May 2024 to 3 May 2024"
    polyline = svg.find(f".//{SVG}polyline")
    assert polyline is not None
    assert len(polyline.get("points", "").split()) == 3


def test_long_ranges_label_a_few_days_and_name_the_years() -> None:
    days = [date(2023, 12, 1) + timedelta(days=n) for n in range(366)]
    chart = charts.stacked_bars(days, [charts.ChartSeries("A", [1] * 366)], label="A")

    labels = [
        t.text for t in svg_of(parse(chart)).iter(f"{SVG}text") if t.get("text-anchor") == "middle"
    ]
    assert 1 < len(labels) <= charts.MAX_X_LABELS
    assert labels[0] == "1 Dec 2023"


def test_meter_is_proportional_and_bounded() -> None:
    def width(markup: str) -> str | None:
        return list(parse(markup).iter(f"{SVG}rect"))[1].get("width")

    assert width(charts.meter(5, 10)) == "50"
    assert width(charts.meter(10, 10)) == "100"
    assert width(charts.meter(0, 0)) == "0"
    assert width(charts.meter(12, 10)) == "100"


def test_an_empty_area_chart_draws_no_line() -> None:
    svg = svg_of(parse(charts.area_chart(DAYS, [0, 0, 0], label="x", unit="y")))

    assert svg.find(f".//{SVG}polyline") is None
    assert svg.find(f".//{SVG}path") is None


def test_line_chart_draws_a_line_per_series_with_a_tooltip_per_slot() -> None:
    chart = charts.line_chart(
        ["+0 h", "", "+2 h", "+1 d"],
        ["first hour", "second hour", "third hour", "<b>a day</b>"],
        [
            charts.ChartSeries("Opens", [3, 1, 0, 2]),
            charts.ChartSeries('Clicks "<script>"', [1, 0, 0, 0]),
            charts.ChartSeries("Nothing", [0, 0, 0, 0]),
        ],
        label="Opens and clicks",
        divider=(3, "daily from here"),
    )
    root = parse(chart)
    svg = svg_of(root)
    assert len(list(svg.iter(f"{SVG}polyline"))) == 2  # a series without any hit draws none
    shown = titles(root)
    assert shown[0] == 'first hour\nOpens: 3\nClicks "<script>": 1\nNothing: 0'
    assert shown[3].startswith("<b>a day</b>")  # text, escaped in the markup
    assert "<b>" not in str(chart)
    assert "<script>" not in str(chart)
    labels = [t.text for t in svg.iter(f"{SVG}text")]
    assert {"+0 h", "+2 h", "+1 d", "daily from here"} <= set(labels)
    assert svg.get("aria-label") == 'Opens and clicks: Opens: 6, Clicks "<script>": 1, Nothing: 0'
    assert "style=" not in str(chart)


def test_an_empty_line_chart_says_so() -> None:
    chart = str(
        charts.line_chart(
            ["+0 h"],
            ["first hour"],
            [charts.ChartSeries("Opens", [0])],
            label="Opens",
            empty="No opens yet.",
        )
    )
    assert "No opens yet." in chart
    assert "polyline" not in chart
