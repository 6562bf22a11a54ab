"""``aofnode logs summarize|plot``: the command line over node/tools/logtools.py (summarizing
a log), node/tools/logreport.py (printing the summary) and node/tools/logplot.py (drawing it). It
sits above them so that none imports its caller: logreport and logplot read what logtools
summarized, and nothing imports back.
"""
from __future__ import annotations

import contextlib
import json
import sys

from aofnode.tools.logplot import plot_timeline
from aofnode.tools.logreport import render_text
from aofnode.tools.logtools import summarize

__all__ = ["logs_main"]


def logs_main(args) -> int:
    """``args``: ``logs_cmd`` (summarize|plot), ``file`` (a path or "-"), ``json``, ``output``."""
    plot = args.logs_cmd == "plot"
    try:
        stream = contextlib.nullcontext(sys.stdin.buffer) if args.file == "-" else open(args.file, "rb")
        with stream as f:
            s = summarize(f, timeline=plot)
    except OSError as exc:
        print(f"aofnode logs: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if plot:
        try:
            plot_timeline(s, args.output, title=args.file)
        except OSError as exc:
            print(f"aofnode logs: {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.output}")
        return 0
    result = s.result()
    print(json.dumps(result, indent=2) if args.json else render_text(result))
    return 0
