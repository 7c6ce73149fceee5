"""A run's journal as a Gantt chart: one bar per position, retries as segments, sleeps
and waits drawn apart, and long idle gaps collapsed into labelled breaks, so a run of
months stays readable. The journal is cut into pages here: a browser never gets more
than one page of a 10,000-step run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from durably.records import StepRecord

#: Journal positions drawn on one page.
PAGE = 200
#: The narrowest bar drawn (percent of the width): an instant stays visible.
MIN_WIDTH = 0.4
#: Share of the chart's width one collapsed gap takes.
BREAK_WIDTH = 3.0


@dataclass(frozen=True)
class Bar:
    """One journal position on the chart (left and width in percent of its width)."""

    seq: int
    kind: str
    name: str
    status: str
    attempts: int
    left: float
    width: float
    started: datetime | None
    finished: datetime | None
    title: str


@dataclass(frozen=True)
class Gap:
    """A stretch with nothing going on, drawn as a narrow break."""

    left: float
    label: str


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    gaps: list[Gap]
    page: int
    pages: int
    total: int


def chart(shown: list[StepRecord], page: int, total: int) -> Chart:
    """The chart of ``shown``, page ``page`` (from 1) of a journal of ``total`` positions."""
    pages = max(1, -(-total // PAGE))
    spans = [_span(s) for s in shown]
    timed = sorted(s for s in spans if s is not None)
    axis = _Axis(timed)
    bars = []
    for step, span in zip(shown, spans, strict=True):
        left, right = axis.place(span) if span is not None else (0.0, 0.0)
        bars.append(
            Bar(
                step.seq,
                step.kind,
                step.name,
                step.status,
                step.attempts,
                min(left, 100.0 - MIN_WIDTH),
                max(right - left, MIN_WIDTH),
                step.started_at,
                step.finished_at,
                _title(step),
            )
        )
    return Chart(bars, axis.gaps, page, pages, total)


def _span(step: StepRecord) -> tuple[float, float] | None:
    start = step.started_at or step.finished_at
    if start is None:
        return None
    end = step.finished_at or start
    return start.timestamp(), max(end.timestamp(), start.timestamp())


class _Axis:
    """Time to percent of the width, with gaps longer than the activity around them
    collapsed to :data:`BREAK_WIDTH` each."""

    def __init__(self, spans: list[tuple[float, float]]) -> None:
        self.gaps: list[Gap] = []
        if not spans:
            self._pieces: list[tuple[float, float, float]] = []
            self._scale = 1.0
            return
        merged: list[list[float]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        busy = sum(end - start for start, end in merged) or 1.0
        limit = max(60.0, busy)  # idle longer than all activity, or a minute: a break
        collapsed = [
            (merged[i][1], merged[i + 1][0])
            for i in range(len(merged) - 1)
            if merged[i + 1][0] - merged[i][1] > limit
        ]
        shown = (merged[-1][1] - merged[0][0]) - sum(b - a for a, b in collapsed)
        width = 100.0 - BREAK_WIDTH * len(collapsed)
        self._scale = width / shown if shown > 0 else 0.0
        # (time where a piece starts, its x, the time it ends) for each uncollapsed piece
        self._pieces = []
        x, start = 0.0, merged[0][0]
        for gap_start, gap_end in collapsed:
            self._pieces.append((start, x, gap_start))
            x += (gap_start - start) * self._scale
            self.gaps.append(Gap(x, _duration(gap_end - gap_start)))
            x += BREAK_WIDTH
            start = gap_end
        self._pieces.append((start, x, merged[-1][1]))

    def place(self, span: tuple[float, float]) -> tuple[float, float]:
        return self._x(span[0]), self._x(span[1])

    def _x(self, t: float) -> float:
        for start, x, end in self._pieces:
            if t <= end:
                return min(100.0, x + max(0.0, t - start) * self._scale)
        return 100.0


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit} idle"
    return f"{seconds:.0f}s idle"


def _title(step: StepRecord) -> str:
    took = ""
    if step.started_at and step.finished_at:
        took = f", {(step.finished_at - step.started_at).total_seconds():.3f}s"
    tries = f", {step.attempts} attempts" if step.attempts > 1 else ""
    return f"#{step.seq} {step.kind} {step.name}: {step.status}{tries}{took}"
