"""Charts for the report: a time series with its threshold and the window judged, a load run, a chaos experiment's
timeline, the detection matrix as a grid. Drawn headless (matplotlib's Agg) as PNG, only when asked: matplotlib is
imported on the first chart, so a healthy run that draws none never pays for it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from entmoot_ops.secrets import masker


@dataclass(frozen=True)
class Line:
    label: str
    points: Sequence[tuple[datetime, float]]
    axis: str = "left"  # "right": a second scale (request counts beside a rate, say)


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    lines: Sequence[Line]
    threshold: float | None = None
    window: tuple[datetime, datetime] | None = None  # shaded: the periods that were judged
    right_unit: str = ""


def of_series(title: str, lines: dict[str, Any], *, unit: str, threshold: float | None, window: Any = None,
              scale: float = 1.0) -> Chart:
    """A chart of CloudWatch series (``cloudwatch.Series`` by label), values times ``scale``, with the threshold in
    the same unit and the window (``cloudwatch.Window``) that was judged."""
    return Chart(title, unit, [Line(label, [(at, value * scale) for at, value in found.points]) for label, found in lines.items()],
                 threshold, (window.start, window.end) if window is not None else None)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ModuleNotFoundError("charts need matplotlib: pip install 'entmoot-ops[charts]'", name="matplotlib") from None

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def _png(figure: Any) -> bytes:
    """The figure as PNG, every text on it (title, legend, annotations, tick labels) masked: a label can quote what
    was measured, a path or a key."""
    from matplotlib.text import Text

    figure.canvas.draw()  # tick labels exist once drawn
    for axis in figure.axes:
        for which in ("x", "y"):
            labels = [tick.get_text() for tick in getattr(axis, f"get_{which}ticklabels")()]
            masked = [masker(label) for label in labels]
            if masked != labels:
                getattr(axis, f"set_{which}ticks")(getattr(axis, f"get_{which}ticks")(), masked)
    for text in figure.findobj(Text):
        text.set_text(masker(text.get_text()))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def series(chart: Chart) -> bytes:
    """Each line over time; the threshold as a dashed red line; the judged window shaded."""
    pyplot = _pyplot()
    figure, left = pyplot.subplots(figsize=(8, 3.2))
    right = left.twinx() if any(line.axis == "right" for line in chart.lines) else None
    for line in chart.lines:
        axis = right if line.axis == "right" and right is not None else left
        if line.points:
            moments, values = zip(*line.points, strict=True)
            axis.plot(moments, values, marker=".", linewidth=1.2, label=line.label, color=None if axis is left else "grey")
    if chart.threshold is not None:
        left.axhline(chart.threshold, color="red", linestyle="--", linewidth=1, label=f"threshold {chart.threshold:g} {chart.unit}")
    if chart.window is not None:
        left.axvspan(*chart.window, color="tab:blue", alpha=0.08, label="window judged")
    left.set_title(chart.title, fontsize=10)
    left.set_ylabel(chart.unit)
    if right is not None:
        right.set_ylabel(chart.right_unit)
    handles = [h for axis in (left, right) if axis is not None for h in axis.get_legend_handles_labels()[0]]
    left.legend(handles=handles, fontsize=7, loc="upper left")
    figure.autofmt_xdate()
    return _png(figure)


def timeline(title: str, events: Sequence[tuple[float, str, str]]) -> bytes:
    """A chaos experiment: each event (seconds since it started, lane, label) on its lane (injection, a lane per
    detector, rollback, recovery)."""
    pyplot = _pyplot()
    lanes = list(dict.fromkeys(lane for _, lane, _ in events))
    figure, axis = pyplot.subplots(figsize=(8, 0.8 + 0.45 * max(1, len(lanes))))
    for seconds, lane, label in events:
        row = lanes.index(lane)
        axis.plot([seconds], [row], marker="o", color="tab:red" if lane in ("injection", "abort") else
                  "tab:orange" if lane.startswith("detected") else "tab:blue")
        axis.annotate(f"{label} ({seconds:.1f} s)", (seconds, row), textcoords="offset points", xytext=(4, 4), fontsize=7)
    axis.set_yticks(range(len(lanes)), lanes, fontsize=8)
    axis.set_ylim(-0.6, len(lanes) - 0.4)
    axis.set_xlabel("seconds since the experiment started")
    axis.set_title(title, fontsize=10)
    return _png(figure)


def chaos_events(journal: dict[str, Any]) -> list[tuple[float, str, str]]:
    """A journal's injection (its actions), each detection, rollbacks, abort and recovery, in seconds since its start."""
    events: list[tuple[float, str, str]] = []
    injected = None
    for step in journal["timeline"]:
        kind, at = step["step"], step["elapsed"]
        if kind == "action":
            injected = at if injected is None else injected
            events.append((at, "injection", step.get("action", "action")))
        elif kind in ("rollback", "abort"):
            events.append((at, kind, step.get("action") or step.get("reason", kind)))
        elif kind in ("recovered", "not recovered"):
            events.append((at, "recovery", kind))
    for check_id, seconds in journal["detection_seconds"].items():
        if seconds is not None and injected is not None:
            events.append((injected + seconds, f"detected by {check_id}", f"{seconds:g} s after injection"))
    return sorted(events)


def gameday(title: str, rows: Sequence[tuple[str, float | None, float | None]]) -> bytes:
    """A game day: per experiment (name, seconds until detected, seconds until recovered), two bars; a missing
    figure (never detected, never recovered, nothing to detect) is left out and said on the axis."""
    pyplot = _pyplot()
    figure, axis = pyplot.subplots(figsize=(8, 0.9 + 0.5 * max(1, len(rows))))
    for row, (_, detected, recovered) in enumerate(rows):
        for offset, seconds, color, label in ((-0.18, detected, "tab:orange", "detection"), (0.18, recovered, "tab:blue", "recovery")):
            if seconds is not None:
                axis.barh(row + offset, seconds, height=0.34, color=color, label=label if row == 0 else None)
                axis.annotate(f"{seconds:g} s", (seconds, row + offset), textcoords="offset points", xytext=(3, -3), fontsize=7)
    axis.set_yticks(range(len(rows)), [name for name, _, _ in rows], fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("seconds (detection: after injection; recovery: after the fault ended)")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=7, loc="lower right")
    return _png(figure)


def load_run(title: str, history: Sequence[dict[str, str]], hosts: Sequence[tuple[datetime, float]], p95_max_ms: float) -> bytes:
    """A load run: requests/s and users, p95 against its threshold, and the healthy tasks behind the load balancer,
    with the scale-out (the first rise of healthy tasks) marked on each. ``history``: locust's stats history rows."""
    pyplot = _pyplot()
    rows = [r for r in history if r.get("Name") == "Aggregated"]
    moments = [datetime.fromtimestamp(int(r["Timestamp"]), hosts[0][0].tzinfo if hosts else None) for r in rows]

    def column(name: str) -> list[float]:
        return [float(r[name]) if r[name] not in ("N/A", "") else float("nan") for r in rows]

    figure, (load, latency, tasks) = pyplot.subplots(3, 1, figsize=(8, 6), sharex=True)
    load.plot(moments, column("Requests/s"), label="requests/s")
    load.plot(moments, column("User Count"), label="users")
    latency.plot(moments, column("95%"), label="p95 (ms)")
    latency.axhline(p95_max_ms, color="red", linestyle="--", linewidth=1, label=f"threshold {p95_max_ms:g} ms")
    if hosts:
        tasks.step([at for at, _ in hosts], [value for _, value in hosts], where="post", label="healthy tasks")
        first = hosts[0][1]
        scaled = next((at for at, value in hosts if value > first), None)
        for axis in (load, latency, tasks) if scaled else ():
            axis.axvline(scaled, color="black", linestyle=":", linewidth=1)
        if scaled:
            tasks.annotate("scale-out", (scaled, 1), xycoords=("data", "axes fraction"), va="top", fontsize=7)
    for axis in (load, latency, tasks):
        axis.legend(fontsize=7, loc="upper left")
    load.set_title(title, fontsize=10)
    figure.autofmt_xdate()
    return _png(figure)


def grid(title: str, rows: Sequence[str], columns: Sequence[str], cells: dict[tuple[str, str], tuple[str, str]]) -> bytes:
    """The detection matrix: a row per fault, a column per check; each cell (text, colour) where there is one."""
    pyplot = _pyplot()
    figure, axis = pyplot.subplots(figsize=(max(6, 0.3 * len(columns) + 3), max(3, 0.22 * len(rows) + 1.5)))
    for (row, column), (text, colour) in cells.items():
        y, x = rows.index(row), columns.index(column)
        axis.add_patch(pyplot.Rectangle((x - 0.5, y - 0.5), 1, 1, color=colour))
        axis.text(x, y, text, ha="center", va="center", fontsize=5)
    axis.set_xlim(-0.5, len(columns) - 0.5)
    axis.set_ylim(len(rows) - 0.5, -0.5)
    axis.set_xticks(range(len(columns)), columns, rotation=90, fontsize=6)
    axis.set_yticks(range(len(rows)), rows, fontsize=6)
    axis.set_title(title, fontsize=10)
    return _png(figure)


def history_svg(chart: Chart) -> bytes:
    """A check's readings over its last runs, with its threshold: SVG from pygal, drawn for every check a run
    remembers (16 ms where a PNG of matplotlib takes 260 ms), every text masked."""
    import pygal

    shown = 100.0 if chart.unit == "%" else 1.0  # ratios are read as percentages
    values = [value * shown for line in chart.lines for _, value in line.points]
    if chart.threshold is not None:
        values.append(chart.threshold * shown)
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    margin = (high - low) * 0.1 or 1.0
    drawn = pygal.DateTimeLine(width=720, height=280, x_label_rotation=20, truncate_legend=60, dots_size=2, legend_at_bottom=True,
                               disable_xml_declaration=True, js=[], title=masker(chart.title), y_title=chart.unit or None,
                               range=(low - margin, high + margin), x_value_formatter=lambda moment: moment.strftime("%m-%d %H:%M"))
    for line in chart.lines:
        drawn.add(masker(line.label), [(at, value * shown) for at, value in line.points])
    moments = [at for line in chart.lines for at, _ in line.points]
    if chart.threshold is not None and moments:
        drawn.add(f"threshold {chart.threshold * shown:g} {chart.unit}".rstrip(),
                  [(min(moments), chart.threshold * shown), (max(moments), chart.threshold * shown)], show_dots=False,
                  stroke_style={"dasharray": "6, 3", "width": 2})
    return drawn.render(is_unicode=True).encode()
