"""``--plot FILE.png``: latency percentiles and throughput over time, one column per target.

Top row: p50/p99/p99.9/max latency per second (ms, log scale). Bottom row: requests completed
per second. The warmup is shaded grey, the AOF rewrite window (if any) orange. Uses the Agg
backend: no display needed.
"""
from __future__ import annotations

__all__ = ["plot_targets"]

_SERIES = (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max"))


def plot_targets(targets: dict[str, dict], path: str, title: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(targets)
    fig, axes = plt.subplots(2, len(names), figsize=(6 * len(names), 7), squeeze=False,
                             sharex="col")
    for col, name in enumerate(names):
        result = targets[name]
        rows = result["timeline"]
        xs = [r["second"] + 0.5 for r in rows]  # a second's values plotted at its middle
        lat_ax, tput_ax = axes[0][col], axes[1][col]
        for key, label in _SERIES:
            ys = [r["latency_ms"][key] for r in rows]
            pts = [(x, y) for x, y in zip(xs, ys) if y is not None and y > 0]
            if pts:
                lat_ax.plot(*zip(*pts), marker=".", label=label)
        lat_ax.set_yscale("log")
        lat_ax.set_ylabel("latency (ms)")
        lat_ax.set_title(name)
        lat_ax.grid(True, which="both", alpha=0.3)
        lat_ax.legend(loc="upper left", fontsize="small")
        full = [(x, r["requests"]) for x, r in zip(xs, rows) if not r.get("tail")]
        if full:  # the drain after the end is a partial second: it would look like a drop
            tput_ax.plot(*zip(*full), marker=".", color="tab:green")
        tput_ax.set_ylabel("requests / s")
        tput_ax.set_xlabel("time (s)")
        tput_ax.set_ylim(bottom=0)
        tput_ax.grid(True, alpha=0.3)
        warm = [r["second"] for r in rows if r["warmup"]]
        rw = result.get("rewrite")
        for ax in (lat_ax, tput_ax):
            if warm:
                ax.axvspan(0, max(warm) + 1, color="grey", alpha=0.15, label="warmup")
            if rw and rw.get("start_s") is not None:
                end = rw["end_s"] if rw["end_s"] is not None else rw["start_s"] + 0.1
                ax.axvspan(rw["start_s"], end, color="tab:orange", alpha=0.25,
                           label=f"rewrite ({rw['status']})"[:40])
    if title:
        fig.suptitle(title, fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
