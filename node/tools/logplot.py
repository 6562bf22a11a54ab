"""``aofnode logs plot``: one PNG timeline of a node's log (matplotlib, Agg backend).

Top panel: one row of markers per kind (warnings, errors, actor deaths, AOF loads). Bottom
panel: fsyncs and commands per ``log_summary`` interval. A summary is written only when a counter
moved, so two summaries more than 1.5 intervals apart have an idle gap between them: the lines
break there (``summary_series``) rather than draw a ramp across it. Rewrites are shaded across
both panels from ``rewrite_started`` to ``rewrite_switched``/``rewrite_failed`` (green ok, red
err, grey incomplete: shaded to the actor's death, or to the end of the log), each with a dark
edge (back-to-back rewrites stay apart) and a label ``#N manual|automatic`` (``rewrite_spans``).
Time is in seconds since the first timestamp of the log. Any kind of event may be absent; an
empty log gives an empty plot.
"""
from __future__ import annotations

from aofnode.log.report import SUMMARY_INTERVAL_S
from aofnode.tools.logevents import iso_utc
from aofnode.tools.logtools import Summarizer

__all__ = ["plot_timeline", "summary_series", "rewrite_spans"]

# Two summaries further apart than this have an idle gap between them.
GAP_S = 1.5 * SUMMARY_INTERVAL_S
# How a rewrite's trigger is labelled: ``scheduled`` is a BGREWRITEAOF that waited for a child.
_TRIGGERS = {"manual": "manual", "auto": "automatic", "scheduled": "manual (scheduled)"}

_ROWS = (  # (marker kind, label, matplotlib marker, colour), bottom row first
    ("load", "AOF loads", "^", "tab:blue"),
    ("restart", "actor died", "v", "tab:purple"),
    ("error", "errors", "X", "tab:red"),
    ("warning", "warnings", "o", "tab:orange"),
)
_SPAN_COLOURS = {"ok": "tab:green", "err": "tab:red", "incomplete": "grey"}


def plot_timeline(s: Summarizer, path: str, title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    t0 = s.first_t or 0.0
    end = (s.last_t or t0) - t0
    fig, (ev_ax, sum_ax) = plt.subplots(2, 1, figsize=(11, 6), sharex=True,
                                        gridspec_kw={"height_ratios": [1, 1.4]})

    for y, (kind, _label, marker, colour) in enumerate(_ROWS):
        points = s.markers[kind].items
        if points:
            ev_ax.scatter([t - t0 for t, _ in points], [y] * len(points), marker=marker, color=colour,
                          s=36, zorder=3)
    ev_ax.set_yticks(range(len(_ROWS)), [f"{name} ({len(s.markers[k].items)})" for k, name, _, _ in _ROWS])
    ev_ax.set_ylim(-0.7, len(_ROWS) - 0.3)
    ev_ax.grid(True, axis="x", alpha=0.3)

    if s.summaries:
        xs, fsyncs, commands = summary_series(s.summaries, t0)
        sum_ax.plot(xs, fsyncs, marker=".", color="tab:blue", label="fsyncs / interval")
        cmd_ax = sum_ax.twinx()
        cmd_ax.plot(xs, commands, marker=".", color="tab:green", label="commands / interval")
        cmd_ax.set_ylabel("commands", color="tab:green")
        cmd_ax.set_ylim(bottom=0)
        lines = sum_ax.get_legend_handles_labels()[0] + cmd_ax.get_legend_handles_labels()[0]
        sum_ax.legend(lines, [ln.get_label() for ln in lines], loc="upper left", fontsize="small")
    else:
        sum_ax.text(0.5, 0.5, "no log_summary events (one every 10 s, when counters moved)",
                    transform=sum_ax.transAxes, ha="center", va="center", color="grey")
    sum_ax.set_ylabel("fsyncs", color="tab:blue")
    sum_ax.set_ylim(bottom=0)
    sum_ax.grid(True, alpha=0.3)
    sum_ax.set_xlabel(f"seconds since {iso_utc(s.first_t) or '(no timestamps)'}")

    spans: dict[str, list] = {}  # status -> [(x, width)]: one collection per status, not a patch per rewrite
    min_width = max(end, 1.0) * 0.003  # a rewrite of a few ms would be invisible otherwise
    for span in rewrite_spans(s, t0):
        spans.setdefault(span["status"], []).append((span["x"], max(span["width"], min_width)))
        ev_ax.annotate(span["label"], (span["x"], 1.0), xycoords=ev_ax.get_xaxis_transform(),
                       xytext=(2, -2), textcoords="offset points", rotation=90, va="top",
                       fontsize="x-small", color="dimgrey", zorder=4)
    for status, xranges in spans.items():
        for ax in (ev_ax, sum_ax):
            ax.broken_barh(xranges, (0, 1), transform=ax.get_xaxis_transform(),
                           facecolor=_SPAN_COLOURS.get(status, "grey"), alpha=0.25, zorder=1,
                           edgecolor="black", linewidth=0.6)
    seen = set(spans)
    if seen:
        ev_ax.legend(handles=[Patch(color=_SPAN_COLOURS.get(k, "grey"), alpha=0.25, label=f"rewrite {k}")
                              for k in sorted(seen)], loc="upper right", fontsize="small")
    ev_ax.set_xlim(-max(end, 1.0) * 0.02, max(end, 1.0) * 1.02)
    ev_ax.set_title(f"aofnode log timeline{': ' + title if title else ''}", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary_series(summaries: list[tuple], t0: float) -> tuple[list[float], list[float], list[float]]:
    """(seconds since ``t0``, fsyncs, commands) of each summary, with a NaN point (a break in
    the line) between two summaries more than ``GAP_S`` apart, and NaN for a missing value."""
    nan = float("nan")
    xs, fsyncs, commands = [], [], []
    last = None
    for t, f, c in summaries:
        if last is not None and t - last > GAP_S:
            xs.append(nan)
            fsyncs.append(nan)
            commands.append(nan)
        last = t
        xs.append(t - t0)
        fsyncs.append(f if f is not None else nan)
        commands.append(c if c is not None else nan)
    return xs, fsyncs, commands


def rewrite_spans(s: Summarizer, t0: float) -> list[dict]:
    """One dict per rewrite with a start: x (seconds since ``t0``), width, status and label
    (``#N manual``, ``#N automatic``, numbered in the order of the log)."""
    out = []
    for row in s.rewrites:
        start = row["_start_t"]
        if start is None:
            continue
        stop = row["_end_t"] if row["_end_t"] is not None else (s.last_t or start)
        trigger = row.get("trigger")
        label = _TRIGGERS.get(trigger, str(trigger) if trigger else "trigger unknown")
        out.append({"x": start - t0, "width": max(stop - start, 0.0), "status": row["status"],
                    "label": f"#{len(out) + 1} {label}"})
    return out
