"""``aofnode logs summarize``'s text report: a ``Summarizer.result()`` as aligned tables."""
from __future__ import annotations

import math

from aofnode.tools.logevents import SUMMED

__all__ = ["render_text"]


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if math.isfinite(value) else str(value)
    text = str(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= 60 else text[:59] + "~"


def _table(headers: list[str], rows: list[list], indent: str = "  ") -> list[str]:
    """Aligned columns: numbers to the right, text to the left."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [all(isinstance(r[i], (int, float)) or r[i] is None for r in rows) for i in range(len(headers))]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    out = []
    for row in [headers] + cells:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(row, widths, numeric)]
        out.append((indent + "  ".join(parts)).rstrip())
    return out


def render_text(r: dict) -> str:
    out = [f"Rewrites ({len(r['rewrites'])})"]
    if r["rewrites"]:
        cols = ["start", "pid", "trigger", "fork_ms", "child_s", "cow_mb", "diff_bytes", "slices",
                "longest_slice_ms", "total_s", "longest_pause_ms"]
        rows = [[w[k] for k in cols] + [w["status"] + (f" ({w['reason']})" if w["reason"] else "")]
                for w in r["rewrites"]]
        out += _table(cols + ["status"], rows)
    f = r["fsync"]
    out += ["", f"Fsync (from {f['log_summaries']} log_summary events and the warnings)"]
    out += _table(["counter", "value"], [[k, f[k]] for k in (*SUMMED, "slow_fsync_warnings",
                                                            "delayed_fsync_warnings", "slowest_fsync_s")])
    out += ["", f"AOF loads ({len(r['aof_loads'])})"]
    if r["aof_loads"]:
        rows = []
        for ld in r["aof_loads"]:
            cut = sum(t["bytes_cut"] or 0 for t in ld["truncations"])
            status = ld["status"] + (f" ({ld['reason']})" if ld["reason"] else "")
            rows.append([ld["ts"], ld["pid"], ld["records"], ld["entries"], ld["bytes"], ld["seconds"],
                         len(ld["truncations"]), cut, status])
        out += _table(["ts", "pid", "records", "entries", "bytes", "seconds", "truncations", "bytes_cut",
                       "status"], rows)
    out += ["", "Warnings and errors"]
    rows = [[w["level"], w["event"], w["count"]] for w in r["warnings_errors"]]
    out += _table(["level", "event", "count"], rows) if rows else ["  (none)"]
    a = r["actors"]
    out += ["", f"Actors (node starts: {a['node_starts']})"]
    rows = [[x["role"], x["died"], " ".join(f"{rc}:{n}" for rc, n in x["returncodes"].items()) or None,
             x["restarts"], x["restarts_scheduled"]] for x in a["roles"]]
    out += _table(["role", "died", "returncodes", "restarts", "scheduled"], rows) if rows else ["  (none)"]
    t = r["totals"]
    out += ["", "Totals"]
    rows = [[k, v] for k, v in t.items() if not isinstance(v, dict)]
    for key in ("unknown_event_names", "malformed_event_names"):
        if t[key]:
            rows.append([key, ", ".join(f"{_cell(n)}:{c}" for n, c in list(t[key].items())[:10])])
    out += _table(["total", "value"], rows)
    return "\n".join(out)
