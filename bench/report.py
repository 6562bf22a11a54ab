"""Turn measurement results into a printed table and the ``--json`` document.

Design
------
Pure functions over the dicts that ``run.measure`` returns: no I/O besides the ``out`` stream
they are handed. The JSON document is
``{"config": {...}, "servers": {...}, "targets": {name: result}, "ratio": {...} | null}``;
``ratio`` (aofnode / redis, for throughput and each latency percentile) exists only when both
targets were measured.
"""
from __future__ import annotations

import json
from typing import TextIO

__all__ = ["ratio", "build_document", "print_target", "print_ratio", "print_settings",
           "write_json"]

_LAT = ("p50", "p99", "p999", "max")


def ratio(a: dict, r: dict) -> dict:
    """aofnode / redis for throughput and each latency percentile (None where undefined)."""
    def div(x, y):
        return round(x / y, 3) if x is not None and y else None
    out = {"throughput": div(a["throughput"], r["throughput"])}
    for k in _LAT:
        out[f"latency_{k}"] = div(a["latency_ms"][k], r["latency_ms"][k])
    return out


def build_document(config: dict, servers: dict, targets: dict) -> dict:
    doc = {"config": config, "servers": servers, "targets": targets, "ratio": None}
    if "aofnode" in targets and "redis" in targets:
        doc["ratio"] = ratio(targets["aofnode"], targets["redis"])
    return doc


def write_json(path: str, doc: dict) -> None:
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def _ms(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.1f}")


def print_settings(servers: dict, out: TextIO) -> None:
    for name, s in servers.items():
        out.write(f"server {name}: {s.get('version', '')}\n  {' '.join(_quote(a) for a in s['command'])}\n")


def _quote(arg: str) -> str:
    return '""' if arg == "" else arg


def print_target(name: str, r: dict, out: TextIO) -> None:
    lat = r["latency_ms"]
    offered = f"{r['offered_rate']:.0f}/s" if r["offered_rate"] else "closed loop"
    out.write(f"\n== {name} ==\n")
    out.write(f"throughput   {r['throughput']} req/s  (offered: {offered})\n")
    out.write(f"requests     {r['requests']} in {r['duration_s']} s   errors {r['errors']}"
              f"{' ' + str(r['errors_by_code']) if r['errors_by_code'] else ''}"
              f"   timeouts {r['timeouts']}\n")
    out.write(f"sent/replied {r['sent']}/{r['replied']} (whole run, warmup included)\n")
    out.write("latency ms   " + "  ".join(f"{k} {_ms(lat[k])}" for k in _LAT) + "\n")
    if r.get("server_cpu_us_per_request") is not None:
        parts = ", ".join(f"{k} {v}" for k, v in r["server_cpu_us_per_request_by_process"].items())
        out.write(f"server CPU   {r['server_cpu_us_per_request']} us/request  ({parts})\n")
    out.write(f"generator    {r['generator_cpu_pct']}% of one core over {r['generator_procs']} "
              f"process(es), {r['generator_cpu_us_per_request']} us/request\n")
    if r.get("machine_busy_cores") is not None:
        out.write(f"machine      {r['machine_busy_cores']} cores busy, {r['other_cpu_cores']} of them "
                  f"neither the server nor the generator\n")
    rw = r.get("rewrite")
    if rw:
        out.write(f"rewrite      start {rw['start_s']} s  end {rw['end_s']} s  {rw['status']}\n")
    out.write(f"{'sec':>4} {'requests':>9} {'errors':>6} {'tmo':>4} "
              + " ".join(f"{k:>8}" for k in _LAT) + "\n")
    for row in r["timeline"]:
        mark = _mark(row, rw)
        lat = row["latency_ms"]
        out.write(f"{row['second']:>4} {row['requests']:>9} {row['errors']:>6} "
                  f"{row['timeouts']:>4} " + " ".join(f"{_ms(lat[k]):>8}" for k in _LAT)
                  + mark + "\n")


def _mark(row: dict, rw: dict | None) -> str:
    marks = []
    if row["warmup"]:
        marks.append("warmup")
    if row.get("tail"):
        marks.append("tail (replies after the end)")
    if rw and rw.get("start_s") is not None:
        end = rw["end_s"] if rw["end_s"] is not None else rw["start_s"]
        if row["second"] + 1 > rw["start_s"] and row["second"] <= end:
            marks.append("rewrite")
    return ("  " + ",".join(marks)) if marks else ""


def print_ratio(r: dict, out: TextIO) -> None:
    out.write("\n== aofnode / redis ==\n")
    out.write("  ".join(f"{k} {'-' if v is None else v}" for k, v in r.items()) + "\n")
