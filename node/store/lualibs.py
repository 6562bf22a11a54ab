"""cjson, cmsgpack, bit and struct for scripts: Redis 7.0's libraries, as Python callbacks.

lupa's Lua 5.1 has none of them built in (Redis links its own C modules), and lupa cannot load
C modules without a compiler, so the commonly used subset is here, behind the same Lua names:

* ``cjson.encode`` / ``cjson.decode`` (JSON null decodes to ``cjson.null``, an empty read-only
  table; numbers that are whole encode without a fraction).
* ``cmsgpack.pack(...)`` / ``cmsgpack.unpack(s)`` (Lua strings are msgpack raw strings, as
  Redis's cmsgpack writes them; several values in, several values out).
* ``bit``: LuaBitOp's tobit, tohex, bnot, band, bor, bxor, lshift, rshift, arshift, rol, ror,
  bswap, on 32-bit signed integers.
* ``struct.pack`` / ``unpack`` / ``size``: endianness ``< > = !``, ``b B h H i I l L`` (``i``
  and ``I`` take a size, e.g. ``I2``), ``f d``, ``s`` (zero-terminated), ``cN`` (fixed) and
  ``x``. Alignment (``!N``) and ``c0`` are not supported: docs/resp.md lists the gaps.

Lua tables become Python lists when their keys are 1..n, dicts otherwise (``lua_to_py``).
"""

from __future__ import annotations

import json
import math
import struct as _struct
from typing import Any

import lupa.lua51 as lua
import msgpack

__all__ = ["make_libs", "lua_to_py", "py_to_lua"]

_MAX_DEPTH = 1000  # cjson's own default nesting limit
_MSGPACK_NESTING = 16  # Redis's cmsgpack (LUACMSGPACK_MAX_NESTING): deeper tables pack as nil


def lua_to_py(value: Any, depth: int = 0, cap: int = 0) -> Any:
    """A Lua value as plain Python: tables become lists (keys 1..n) or dicts. With ``cap``, a
    table nested ``cap`` deep becomes None (cmsgpack's rule), else past _MAX_DEPTH an error."""
    if lua.lua_type(value) != "table":
        return value
    if cap and depth >= cap:
        return None
    if depth > _MAX_DEPTH:
        raise ValueError("Cannot serialise, excessive nesting")
    items = list(value.items())
    n = len(items)
    if all(type(k) in (int, float) and k == int(k) for k, _ in items) and \
            {int(k) for k, _ in items} == set(range(1, n + 1)):
        out = [None] * n
        for k, v in items:
            out[int(k) - 1] = lua_to_py(v, depth + 1, cap)
        return out
    return {k: lua_to_py(v, depth + 1, cap) for k, v in items}


def py_to_lua(runtime, value: Any, null: Any = None) -> Any:
    """A Python value (lists, dicts, scalars) as Lua values; None becomes ``null``."""
    if value is None:
        return null
    if type(value) is list:
        return runtime.table_from([py_to_lua(runtime, v, null) for v in value])
    if type(value) is dict:
        return runtime.table_from({py_to_lua(runtime, k): py_to_lua(runtime, v, null)
                                   for k, v in value.items()})
    if type(value) is str:
        return value.encode("utf-8", "surrogateescape")
    return value


def _number(x: float) -> float | int:
    return int(x) if type(x) is float and x.is_integer() and abs(x) < 2**53 else x


# -- cjson ------------------------------------------------------------------------------------

def _json_ready(value: Any, null: Any, invalid_numbers: bool = False) -> Any:
    if value is null:
        return None
    if type(value) is bytes:
        return value.decode("utf-8", "surrogateescape")
    if type(value) is float:
        if not math.isfinite(value) and not invalid_numbers:
            raise ValueError("Cannot serialise number: must not be NaN or Inf")
        return _number(value) if math.isfinite(value) else value
    if type(value) is list:
        return [_json_ready(v, null, invalid_numbers) for v in value]
    if type(value) is dict:
        for k in value:
            if type(k) not in (bytes, int, float):
                raise ValueError(f"Cannot serialise {type(k).__name__}: table key must be a "
                                 "number or string")
        return {(k.decode("utf-8", "surrogateescape") if type(k) is bytes else
                 str(_number(k)) if type(k) is float else str(k)):
                _json_ready(v, null, invalid_numbers) for k, v in value.items()}
    if value is None or type(value) in (bool, int):
        return value
    raise ValueError(f"Cannot serialise {lua.lua_type(value) or type(value).__name__}: "
                     "type not supported")


def _nesting(value: Any) -> int:
    if type(value) is list:
        return 1 + max(map(_nesting, value), default=0)
    if type(value) is dict:
        return 1 + max(map(_nesting, value.values()), default=0)
    return 0


def _cjson(runtime, null) -> dict:
    # cjson's settings (per Lua state, as in Redis): nesting depths and NaN/Inf encoding.
    cfg = {"encode_max_depth": _MAX_DEPTH, "decode_max_depth": _MAX_DEPTH, "invalid": False}

    def encode(value=None):
        try:
            plain = lua_to_py(value)
            if _nesting(plain) > cfg["encode_max_depth"]:
                raise ValueError(f"Cannot serialise, excessive nesting "
                                 f"({cfg['encode_max_depth']})")
            data = json.dumps(_json_ready(plain, null, cfg["invalid"]), separators=(",", ":"),
                              ensure_ascii=False)
        except (ValueError, RecursionError) as exc:
            return None, str(exc).encode()
        return data.encode("utf-8", "surrogateescape"), None

    def decode(text=None):
        if type(text) is not bytes:
            return None, b"bad argument #1 to 'decode' (string expected)"
        try:
            value = json.loads(text.decode("utf-8", "surrogateescape"))
            if _nesting(value) > cfg["decode_max_depth"]:
                raise ValueError(f"excessive nesting ({cfg['decode_max_depth']})")
        except (ValueError, RecursionError) as exc:
            return None, f"Expected value but found invalid token: {exc}".encode()
        return py_to_lua(runtime, value, null), None

    def setting(name: str, low: int = 1):
        def set_(value=None):
            if value is not None:
                cfg[name] = value if type(value) is bool else max(low, int(value))
            return cfg[name]
        return set_
    return {"encode": encode, "decode": decode,
            "encode_max_depth": setting("encode_max_depth"),
            "decode_max_depth": setting("decode_max_depth"),
            "encode_invalid_numbers": setting("invalid"),
            "encode_keep_buffer": lambda value=None: True}  # no buffer kept here: a no-op


# -- cmsgpack ---------------------------------------------------------------------------------

def _msgpack_ready(value: Any) -> Any:
    if type(value) is float:
        return _number(value)
    if type(value) is list:
        return [_msgpack_ready(v) for v in value]
    if type(value) is dict:
        return {_msgpack_ready(k): _msgpack_ready(v) for k, v in value.items()}
    if value is None or type(value) in (bool, int, bytes):
        return value
    return None  # functions and userdata pack as nil, as Redis's cmsgpack does


def _cmsgpack(runtime) -> dict:
    def pack(*values):
        if not values:
            return None, b"MessagePack pack needs input."
        return b"".join(msgpack.packb(_msgpack_ready(lua_to_py(v, cap=_MSGPACK_NESTING)),
                                      use_bin_type=False) for v in values), None

    def unpack(data=None):
        if type(data) is not bytes:
            return None, b"MessagePack unpack needs a string", 0
        try:
            unpacker = msgpack.Unpacker(raw=True, strict_map_key=False)
            unpacker.feed(data)
            values = list(unpacker)
        except (ValueError, msgpack.UnpackException) as exc:
            return None, f"Bad data format in input: {exc}".encode(), 0
        return runtime.table_from([py_to_lua(runtime, v) for v in values]), None, len(values)

    def unpack_limit(data=None, limit=0, offset=0):
        """(offset of the rest or -1, the first ``limit`` objects from ``offset``; 0: all)."""
        if type(data) is not bytes or type(limit) not in (int, float) or \
                type(offset) not in (int, float) or not 0 <= offset <= len(data):
            return None, b"MessagePack unpack_limit needs a string, a limit and an offset", 0
        unpacker = msgpack.Unpacker(raw=True, strict_map_key=False)
        unpacker.feed(data[int(offset):])
        values: list = []
        try:
            for value in unpacker:
                values.append(py_to_lua(runtime, value))
                if limit and len(values) >= limit:
                    break
        except (ValueError, msgpack.UnpackException) as exc:
            return None, f"Bad data format in input: {exc}".encode(), 0
        end = int(offset) + unpacker.tell()
        out = [-1 if end >= len(data) else end, *values]
        return runtime.table_from(out), None, len(out)
    return {"pack": pack, "unpack": unpack, "unpack_limit": unpack_limit}


# -- bit --------------------------------------------------------------------------------------

def _tobit(x: Any) -> int:
    return ((int(x) + 2**31) % 2**32) - 2**31


def _bit() -> dict:
    def tohex(x, n=8):
        n = int(n)
        digits = "0123456789ABCDEF" if n < 0 else "0123456789abcdef"
        n = min(abs(n), 8) or 8
        v = _tobit(x) % 2**32
        return "".join(digits[(v >> (4 * i)) & 15] for i in reversed(range(n))).encode()

    def fold(op):
        def f(x, *rest):
            acc = _tobit(x)
            for y in rest:
                acc = op(acc, _tobit(y))
            return _tobit(acc)
        return f

    return {
        "tobit": _tobit, "tohex": tohex, "bnot": lambda x: _tobit(~_tobit(x)),
        "band": fold(lambda a, b: a & b), "bor": fold(lambda a, b: a | b),
        "bxor": fold(lambda a, b: a ^ b),
        "lshift": lambda x, n: _tobit((_tobit(x) % 2**32) << (int(n) & 31)),
        "rshift": lambda x, n: _tobit((_tobit(x) % 2**32) >> (int(n) & 31)),
        "arshift": lambda x, n: _tobit(_tobit(x) >> (int(n) & 31)),
        "rol": lambda x, n: _tobit(((_tobit(x) % 2**32) << (int(n) & 31)) |
                                   ((_tobit(x) % 2**32) >> (32 - (int(n) & 31)))),
        "ror": lambda x, n: _tobit(((_tobit(x) % 2**32) >> (int(n) & 31)) |
                                   ((_tobit(x) % 2**32) << (32 - (int(n) & 31)))),
        "bswap": lambda x: _tobit(int.from_bytes((_tobit(x) % 2**32).to_bytes(4, "little"),
                                                 "big")),
    }


# -- struct -----------------------------------------------------------------------------------

_SIZES = {"b": 1, "B": 1, "h": 2, "H": 2, "l": 8, "L": 8, "i": 4, "I": 4, "f": 4, "d": 8}


def _items(fmt: bytes):
    """(code, size) per item of a struct format; endianness as ("<"|">", 0)."""
    text, i = fmt.decode("latin-1"), 0
    while i < len(text):
        c = text[i]
        i += 1
        j = i
        while j < len(text) and text[j].isdigit():
            j += 1
        n = int(text[i:j]) if j > i else None
        i = j
        if c in "<>=!":
            yield ("<" if c in "<=" else ">") if c != "!" else "<", 0
        elif c in _SIZES:
            yield c, n if n is not None and c in "iI" else _SIZES[c]
        elif c in "csx":
            yield c, 1 if n is None and c != "s" else (n or 0)
        elif c != " ":
            raise ValueError(f"invalid format option '{c}'")


def _struct_lib(runtime) -> dict:
    def pack(fmt, *values):
        out, order, vals = [], "<", list(values)
        try:
            for code, size in _items(fmt):
                if code in "<>":
                    order = code
                elif code == "x":
                    out.append(b"\0")
                elif code in "fd":
                    out.append(_struct.pack(order + code, float(vals.pop(0))))
                elif code == "s":
                    out.append(bytes(vals.pop(0)) + b"\0")
                elif code == "c":
                    v = bytes(vals.pop(0))
                    out.append(v[:size].ljust(size, b"\0") if size else v)
                else:
                    v = int(vals.pop(0)) % 2**(8 * size)
                    out.append(v.to_bytes(size, "little" if order == "<" else "big"))
        except (ValueError, IndexError, TypeError, OverflowError) as exc:
            return None, str(exc).encode()
        return b"".join(out), None

    def unpack(fmt, data, pos=1):
        out, order, at = [], "<", int(pos) - 1
        try:
            for code, size in _items(fmt):
                if code in "<>":
                    order = code
                    continue
                if code == "s":
                    end = data.index(b"\0", at)
                    out.append(data[at:end])
                    at = end + 1
                    continue
                piece = data[at:at + size]
                if len(piece) < size:
                    raise ValueError("data string too short")
                at += size
                if code in "fd":
                    out.append(_struct.unpack(order + code, piece)[0])
                elif code == "c":
                    out.append(piece)
                elif code != "x":
                    out.append(int.from_bytes(piece, "little" if order == "<" else "big",
                                              signed=code.islower()))
        except (ValueError, TypeError) as exc:
            return None, str(exc).encode(), 0
        return runtime.table_from([*out, at + 1]), None, len(out) + 1

    def size(fmt):
        return sum(s for c, s in _items(fmt) if c not in "<>s")
    return {"pack": pack, "unpack": unpack, "size": size}


# The Lua side: each Python function returns (result, error) so a bad input becomes a Lua
# error raised from Lua (a Python exception would carry a Python traceback into the reply).
_WRAP = r"""
local cjson_py, cmsgpack_py, struct_py, bit_py, null = ...
local unpack = unpack
local function check(r, e) if e then error(e, 3) end return r end
local function check_multi(values, e, n)
  if e then error(e, 3) end
  return unpack(values, 1, n)
end
local cjson = {null = null,
  encode = function(v) return check(cjson_py.encode(v)) end,
  decode = function(s) return check(cjson_py.decode(s)) end}
for _, name in ipairs({"encode_max_depth", "decode_max_depth", "encode_invalid_numbers",
                       "encode_keep_buffer"}) do
  local f = cjson_py[name]
  cjson[name] = function(v) return f(v) end
end
local cmsgpack = {
  pack = function(...) return check(cmsgpack_py.pack(...)) end,
  unpack = function(s) return check_multi(cmsgpack_py.unpack(s)) end,
  unpack_limit = function(s, l, o) return check_multi(cmsgpack_py.unpack_limit(s, l or 0, o or 0)) end,
  unpack_one = function(s, o) return check_multi(cmsgpack_py.unpack_limit(s, 1, o or 0)) end}
local struct = {
  pack = function(...) return check(struct_py.pack(...)) end,
  unpack = function(...) return check_multi(struct_py.unpack(...)) end,
  size = function(f) return struct_py.size(f) end}
local bit = {}
for k, f in pairs(bit_py) do bit[k] = function(...) return f(...) end end
return cjson, cmsgpack, struct, bit
"""


def make_libs(runtime) -> dict:
    """The four libraries as Lua tables of ``runtime``, by name."""
    null = runtime.eval("setmetatable({}, {__newindex = function() error('readonly', 2) end})")
    tables = [runtime.table_from({k.encode(): v for k, v in d.items()})
              for d in (_cjson(runtime, null), _cmsgpack(runtime),
                        _struct_lib(runtime), _bit())]
    cjson, cmsgpack, struct, bit = runtime.execute(_WRAP, *tables, null)
    return {"cjson": cjson, "cmsgpack": cmsgpack, "struct": struct, "bit": bit}
