"""INCRBYFLOAT's arithmetic: x86-64 ``long double`` emulated exactly, for Redis's digits.

Redis parses with ``strtold``, adds in ``long double`` (the x87 80-bit format: a 64-bit
significand, exponents down to 2**-16445 with subnormals, overflow at 2**16384) and prints with
``%.17Lf`` before trimming zeros. A Python float (53-bit) gives other digits: 10.5 + 0.1 prints
``10.6`` from a long double but ``10.59999999999999964`` from a double, and the stored value is
what every later INCRBYFLOAT, GET and the AOF see. So values are exact ``Fraction`` objects,
rounded to the long double grid after each parse and each addition (round half to even, as the
FPU does), and printed from the exact value. No FPU dependency: the same digits on any machine.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["INF", "parse_long_double", "add_long_double", "format_human"]

INF = float("inf")  # a parsed infinity (``inf``, ``-Infinity``): only ever an error to Redis

_MANT_BITS = 64
_MIN_EXP = -16445  # the exponent of the least significant bit of the smallest subnormal
_OVERFLOW = Fraction(2) ** 16384
# Redis's string2ld refuses strings of MAX_LONG_DOUBLE_CHARS (5 KiB) or more.
_MAX_CHARS = 5 * 1024
# Exponents this far out are decided by their sign alone (the string is under 5 KiB, so the
# digits move the value by at most ~5,000 decades); within them the value is computed exactly.
_EXP_LIMIT = 20_000

# What strtold accepts from the first byte, when the whole string must be consumed.
_DEC = re.compile(rb"([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?")
_HEX = re.compile(rb"([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?\d+))?")
_INF = re.compile(rb"([+-]?)(?i:inf|infinity)")


def _round(x: Fraction) -> Fraction | float:
    """``x`` rounded to the nearest long double (ties to even); ``INF`` (signed) on overflow."""
    if x == 0:
        return x
    a = -x if x < 0 else x
    n, d = a.numerator, a.denominator
    e = n.bit_length() - d.bit_length() - _MANT_BITS
    # Make n / d / 2**e land in [2**63, 2**64): the estimate is off by at most one step.
    while True:
        num, den = (n, d << e) if e >= 0 else (n << -e, d)
        if num >= den << _MANT_BITS:
            e += 1
        elif num < den << (_MANT_BITS - 1):
            e -= 1
        else:
            break
    if e < _MIN_EXP:
        e = _MIN_EXP
        num, den = (n << -e, d)
    q, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and q & 1):
        q += 1
    result = Fraction(q) * (Fraction(2) ** e)
    if result >= _OVERFLOW:
        return INF if x > 0 else -INF
    return result if x > 0 else -result


def _exact(sign: bytes, mantissa: int, scale_exp: int, base: int) -> Fraction | float | None:
    """``±mantissa * base**scale_exp`` rounded, or None where strtold reports ERANGE with
    HUGE_VAL or zero (Redis refuses those)."""
    if mantissa == 0:
        return Fraction(0)
    if scale_exp > _EXP_LIMIT:
        return None
    if scale_exp < -_EXP_LIMIT:
        return None
    value = _round(Fraction(mantissa) * Fraction(base) ** scale_exp)
    if value == 0 or value in (INF, -INF):
        return None
    return -value if sign == b"-" else value


def parse_long_double(raw: bytes) -> Fraction | float | None:
    """The value of ``raw`` as Redis's ``string2ld`` reads it, or None if it refuses it.

    Refused: empty or 5 KiB and longer, a leading space, anything strtold leaves unread (a NUL
    included), NaN, and a value that overflows or underflows to zero. Accepted as strtold does:
    decimal and hex (``0x1p3``) forms, a sign, ``inf``/``infinity`` (returned as ``±INF``).
    """
    if not raw or len(raw) >= _MAX_CHARS:
        return None
    m = _DEC.fullmatch(raw)
    if m is not None and (m.group(2) or m.group(3)):
        sign, whole, frac, exp = m.groups()
        frac = frac or b""
        return _exact(sign, int(whole + frac), int(exp or 0) - len(frac), 10)
    m = _HEX.fullmatch(raw)
    if m is not None and (m.group(2) or m.group(3)):
        sign, whole, frac, exp = m.groups()
        frac = frac or b""
        return _exact(sign, int(whole + frac, 16), int(exp or 0) - 4 * len(frac), 2)
    m = _INF.fullmatch(raw)
    if m is not None:
        return -INF if m.group(1) == b"-" else INF
    return None  # NaN, and everything strtold would leave unread


def add_long_double(a: Fraction | float, b: Fraction | float) -> Fraction | None:
    """``a + b`` in long double; None if it is NaN or infinite (Redis's error)."""
    if isinstance(a, float) or isinstance(b, float):
        return None  # an infinity in, an infinity or a NaN out
    result = _round(a + b)
    return None if isinstance(result, float) else result


def format_human(value: Fraction) -> bytes:
    """``%.17Lf`` of ``value``, trailing zeros and a bare point removed, ``-0`` as ``0``
    (Redis's ld2string in LD_STR_HUMAN mode)."""
    scaled = value * 10**17
    q, r = divmod(scaled.numerator, scaled.denominator)  # floor, also for negatives
    # Round half to even on the exact value, as glibc's printf does.
    twice = 2 * r
    if twice > scaled.denominator or (twice == scaled.denominator and q & 1):
        q += 1
    negative = q < 0 or (q == 0 and value < 0)
    digits = b"%018d" % abs(q)
    text = digits[:-17] + b"." + digits[-17:]
    text = text.rstrip(b"0").rstrip(b".")
    if negative and text != b"0":
        return b"-" + text
    return text
