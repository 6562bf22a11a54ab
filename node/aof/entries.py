"""The AOF entry rule: what ``[db, NAME, *args]`` may hold, decoded and as bytes.

- ``check_entries`` is the only definition of a valid entry; ``decode_payload`` unpacks one
  record's payload and applies it. ``scan`` (node/aof/format.py) applies it to every record, so
  ``load`` and ``aofnode check-aof`` cannot disagree.
- ``FIRST_ENTRY``, ``RECORD_HEADS`` and ``ENTRY_HEADS`` are the bytes a record of valid entries
  starts with, as the node writes them: the torn-tail rule (node/aof/format.py) searches a bad
  tail for them.
"""
from __future__ import annotations

import re

import msgpack

from aofnode.protocol.commands import COMMANDS
from aofnode.store.keyspace import NUM_DBS

__all__ = ["WRITE_SPECS", "FIRST_ENTRY", "RECORD_HEADS", "ENTRY_HEADS", "check_entries", "decode_payload"]

WRITE_SPECS = {name: spec for name, spec in COMMANDS.items() if spec.write}
# msgpack array headers by size, as msgpack-python writes them: fixarray, array 16, array 32.
# A record holds at least one entry; an entry has at least db and NAME.
_ARRAY_16, _ARRAY_32 = frozenset((0xDC,)), frozenset((0xDD,))
RECORD_HEADS = ((1, frozenset(range(0x91, 0xA0))), (3, _ARRAY_16), (5, _ARRAY_32))
ENTRY_HEADS = ((1, frozenset(range(0x92, 0xA0))), (3, _ARRAY_16), (5, _ARRAY_32))
# The bytes that follow those headers in every record the node writes: db as a positive fixint
# (0..NUM_DBS-1), then NAME as a fixstr. Searching for them is a C-speed pass (~250 MB/s on
# random bytes here), so a torn tail is searched in about a second at worst.
assert NUM_DBS <= 0x80 and all(len(name) < 32 for name in WRITE_SPECS)
FIRST_ENTRY = re.compile(
    b"[" + re.escape(b"\x00") + b"-" + re.escape(bytes((NUM_DBS - 1,))) + b"](?:"
    + b"|".join(re.escape(bytes((0xA0 + len(n),)) + n.encode()) for n in sorted(WRITE_SPECS))
    + b")"
)


def check_entries(entries: list) -> str | None:
    """Why ``entries`` (a decoded payload) is not a valid list of AOF entries, or None.

    The one rule for load and check-aof. Every entry is ``[db, NAME, *args]`` with
    ``0 <= db < NUM_DBS``, NAME a write command of protocol/commands.py whose arity accepts the
    args, and every arg bytes. One loop for the whole payload: ~0.2 us per SET entry here, about
    half of what executing it costs at load (``set(map(type, ...))`` cost twice as much).
    """
    if type(entries) is not list:
        return f"payload is a {type(entries).__name__}, expected an array of entries"
    specs = WRITE_SPECS
    for i, entry in enumerate(entries):
        if type(entry) is not list or len(entry) < 2:
            return f"entry {i}: not an array [db, NAME, *args]: {entry!r:.80}"
        db, name = entry[0], entry[1]
        if type(db) is not int or not 0 <= db < NUM_DBS:
            return f"entry {i}: db {db!r:.40} is not an integer in 0..{NUM_DBS - 1}"
        spec = specs.get(name) if type(name) is str else None
        if spec is None:
            kind = "a read-only command" if name in COMMANDS else "not a known command"
            return f"entry {i}: {name!r:.40} is {kind}, never written to an AOF"
        if not spec.accepts(len(entry) - 1):
            return f"entry {i}: wrong number of arguments for {name}: {len(entry) - 2}"
        for arg in entry[2:]:
            if type(arg) is not bytes:
                return f"entry {i}: an argument of {name} is a {type(arg).__name__}, not bytes"
    return None


def decode_payload(payload: bytes) -> list:
    """Unpack one payload and check its entries; raise ValueError naming the first bad one."""
    n = len(payload)
    try:
        entries = msgpack.unpackb(
            payload, raw=False, use_list=True, max_bin_len=n, max_str_len=n, max_array_len=n,
            max_map_len=0, max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"payload is not valid msgpack: {exc}") from None
    problem = check_entries(entries)
    if problem is not None:
        raise ValueError(problem)
    return entries
