"""The table `bench/primitives.py` prints: measurement, durably, target, peer."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Result = dict[str, Any]
Row = tuple[str, str, str, str]
NONE = "-"


Cell = Callable[[Result], str]


def _start(r: Result) -> str:
    return f"{r['start_s']:.1f} ({r['runs'] / r['start_s']:,.0f}/s)"


def _rss(r: Result) -> str:
    return f"{r['rss_growth_mb']:.1f}"


def _rss_per_run(r: Result) -> str:
    return f"{r['rss_growth_mb'] * 1024 / r['runs']:.2f}"


def _threads(r: Result) -> str:
    return f"{r['threads_idle_engine']} → {r['threads_holding']}"


def _wake(r: Result) -> str:
    return f"{r['reopen_wake_in_h_min']:.3f} to {r['reopen_wake_in_h_max']:.3f}"


# label, durably's cell, target, the peer's cell (None: not measured there)
HOLD: list[tuple[str, Cell, str, Cell | None]] = [
    ("start them (s)", _start, NONE, _start),
    ("  RSS growth once all sleep (MB)", _rss, "< 50", _rss),
    ("  RSS per sleeping run (KB)", _rss_per_run, NONE, _rss_per_run),
    ("  threads: idle engine → holding", _threads, "none per run", _threads),
    ("  asyncio tasks / runs in flight", lambda r: f"{r['loop_tasks']} / {r['inflight']}",
     "0 / 0", lambda r: f"{r['loop_tasks']} / {r['runs']}"),
    ("  WAL file once all sleep (MB)", lambda r: f"{r['wal_mb']:.0f}", NONE, None),
    ("  WAL left after close (MB)", lambda r: f"{r['reopen_wal_left_mb']:.0f}", "0", None),
    ("  new process: sleeping / runs", lambda r: f"{r['reopen_sleeping']:,} / {r['runs']:,}",
     "all", None),
    ("  new process: wake time ahead (h)", _wake, "≈ 1", None),
    ("  new process: runs it claimed", lambda r: f"{r['reopen_claimed_by_fresh_engine']}",
     "0", None),
]  # fmt: skip


def _hold_rows(kind: str, ours: Result | None, peer: Result | None) -> list[Row]:
    runs = (ours or peer or {}).get("runs", 0)
    rows = []
    for label, cell, target, peer_cell in HOLD:
        if label.startswith("start"):
            label = f"hold {runs:,} x sleep(1h), {kind}: {label}"
        if ours is None and peer_cell is None:
            continue
        rows.append((
            label,
            NONE if ours is None else cell(ours),
            NONE if ours is None else target,
            NONE if peer is None or peer_cell is None else peer_cell(peer),
        ))  # fmt: skip
    return rows


def _tick_row(kind: str, d: Result) -> Row:
    return (
        f"1,000 x sleep(10 ms), {kind} (s)",
        f"{d['total_s']:.2f} (x{d['ratio']:.2f})",
        f"< {2 * d['slept_s']:.0f}",
        NONE,
    )


def _signal_rows(kind: str, d: Result) -> list[Row]:
    return [
        (f"send_signal → step starts, {kind}: median (ms)", f"{d['median_ms']:.2f}", "< 5", NONE),
        ("  p99 (ms)", f"{d['p99_ms']:.2f}", NONE, NONE),
        ("  median, rounds 1-20 → 181-200 (ms)",
         f"{d['first20_median_ms']:.2f} → {d['last20_median_ms']:.2f}", NONE, NONE),
    ]  # fmt: skip


def table(results: dict[str, Result], args: argparse.Namespace) -> str:
    rows: list[Row] = [("measurement", "durably", "target", f"DBOS ({args.peer_runs:,} wf)")]
    for kind in ("sync", "async"):
        held, peer = results.get(f"hold_{kind}"), results.get(f"peer_{kind}")
        if held is not None or peer is not None:
            rows += _hold_rows(kind, held, peer)
    for kind in ("sync", "async"):
        if f"tick_{kind}" in results:
            rows.append(_tick_row(kind, results[f"tick_{kind}"]))
    for kind in ("sync", "async"):
        if f"signal_{kind}" in results:
            rows += _signal_rows(kind, results[f"signal_{kind}"])
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
