"""Horizontal bar charts drawn as SVG by the server: no script, no CDN, no static files.

`bar_chart` lays the bars out (integer pixel geometry); the template
dashboard/_bar_chart.html draws them inline. The figures are also in a table next to
every chart, for screen readers and for copying.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

LABEL_WIDTH = 140  # px left of the bars, for their labels
BAR_AREA = 220  # px of the longest bar
VALUE_WIDTH = 110  # px right of the bars, for their values
ROW_HEIGHT = 24
BAR_HEIGHT = 16
TOP = 6


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    display: str  # the value as the chart writes it ("12.50 USD", "3")
    y: int
    width: int
    text_y: int


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: tuple[Bar, ...]
    width: int
    height: int
    label_width: int = LABEL_WIDTH

    @property
    def value_x(self) -> int:
        return self.label_width + 6


def bar_chart(title: str, points: Sequence[tuple[str, int, str]]) -> BarChart:
    """A chart of (label, value, display) points, bars scaled to the largest |value|.

    A non-zero value gets at least a 2 px bar, so it never looks like nothing."""
    largest = max((abs(value) for _, value, _ in points), default=0)
    bars = []
    for index, (label, value, display) in enumerate(points):
        width = 0 if largest == 0 or value == 0 else max(2, abs(value) * BAR_AREA // largest)
        y = TOP + index * ROW_HEIGHT
        bars.append(Bar(label, value, display, y, width, y + BAR_HEIGHT - 3))
    height = TOP * 2 + max(len(bars), 1) * ROW_HEIGHT
    return BarChart(title, tuple(bars), LABEL_WIDTH + BAR_AREA + VALUE_WIDTH, height)
