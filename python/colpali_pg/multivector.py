"""Conversions between numpy arrays and colpali's multivector wire formats.

Binary format (what multivector_send writes and multivector_recv reads), all
integers big-endian:

    int16  D        dimensions per row
    uint8  format   element format, 0 = float32
    uint8  flags    0
    int32  N        rows
    int32  0        reserved
    N * D  float32  the rows, row-major, big-endian IEEE 754

Text format: ``[[x, y, ...], [x, y, ...], ...]`` (an outer list of rows).
"""
import re
import struct

import numpy as np

FORMAT_FLOAT32 = 0
_HEADER = struct.Struct(">hBBii")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf(?:inity)?|nan)", re.I)


def _as_matrix(value):
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError("a multivector is a 2-D array (rows x dimensions), got %d-D" % arr.ndim)
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError("a multivector needs at least one row and one dimension")
    return arr


def to_binary(value):
    """The binary wire form of a 2-D array (converted to float32)."""
    arr = _as_matrix(value)
    n, d = arr.shape
    return _HEADER.pack(d, FORMAT_FLOAT32, 0, n, 0) + arr.astype(">f4", copy=False).tobytes()


def from_binary(data):
    """A (N, D) float32 array from the binary wire form."""
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise ValueError("multivector binary value too short")
    d, fmt, _flags, n, _reserved = _HEADER.unpack_from(data)
    if fmt != FORMAT_FLOAT32:
        raise ValueError("unsupported multivector element format %d" % fmt)
    if n < 0 or d < 0 or len(data) != _HEADER.size + 4 * n * d:
        raise ValueError("multivector binary value has the wrong size")
    return np.frombuffer(data, dtype=">f4", offset=_HEADER.size).reshape(n, d).astype(np.float32)


def to_text(value):
    """The text form; every float32 is written so that it reads back exactly."""
    arr = _as_matrix(value)
    return "[" + ",".join(
        "[" + ",".join(np.format_float_scientific(x, unique=True, trim="-") for x in row) + "]"
        for row in arr) + "]"


def from_text(text):
    """A (N, D) float32 array from the text form."""
    rows = text.strip()
    if not (rows.startswith("[") and rows.endswith("]")):
        raise ValueError("malformed multivector: %r" % text[:40])
    out = []
    for row in re.findall(r"\[([^\[\]]*)\]", rows[1:-1]):
        out.append([np.float32(x) for x in _NUMBER.findall(row)])
    return np.array(out, dtype=np.float32)


# ---- compact formats: halfmultivector (format 1) and bitmultivector (format 2) ----

FORMAT_HALF = 1
FORMAT_BIT = 2


def _header(data, want):
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise ValueError("multivector binary value too short")
    d, fmt, _flags, n, _reserved = _HEADER.unpack_from(data)
    if fmt != want:
        raise ValueError("element format %d, expected %d" % (fmt, want))
    if n < 0 or d < 0:
        raise ValueError("multivector binary value has a negative size")
    return data, n, d


def half_to_binary(value):
    """The binary wire form of halfmultivector: rows rounded to float16
    (numpy rounds to nearest even, as the server does); values beyond the
    float16 range are an error, as they are in the server."""
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError("a halfmultivector is a non-empty 2-D array")
    try:
        with np.errstate(over="raise", invalid="raise"):
            h = arr.astype(np.float16)
    except FloatingPointError:
        raise ValueError("a value is beyond the half-precision range (|x| >= 65520)") from None
    if not np.isfinite(h).all():
        raise ValueError("a value is not finite in half precision")
    n, d = h.shape
    return _HEADER.pack(d, FORMAT_HALF, 0, n, 0) + h.astype(">f2", copy=False).tobytes()


def half_from_binary(data):
    """A (N, D) float16 array from halfmultivector's binary wire form."""
    data, n, d = _header(data, FORMAT_HALF)
    if len(data) != _HEADER.size + 2 * n * d:
        raise ValueError("halfmultivector binary value has the wrong size")
    return np.frombuffer(data, dtype=">f2", offset=_HEADER.size).reshape(n, d).astype(np.float16)


def half_from_text(text):
    """A (N, D) float16 array from halfmultivector's text form (each number
    printed by the server reads back to the same float16)."""
    return from_text(text).astype(np.float16)


def bits_to_binary(value):
    """The binary wire form of bitmultivector from a (N, D) array of bits
    (booleans, or numbers where > 0 means 1 — the server's sign convention,
    with 0 counted as 1 only by its casts, not here)."""
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError("a bitmultivector is a non-empty 2-D array")
    bits = arr.astype(bool) if arr.dtype == bool else arr > 0
    n, d = bits.shape
    packed = np.packbits(bits, axis=1, bitorder="big")   # dimension k at bit 7 - k % 8
    return _HEADER.pack(d, FORMAT_BIT, 0, n, 0) + packed.tobytes()


def bits_from_binary(data):
    """A (N, D) bool array from bitmultivector's binary wire form."""
    data, n, d = _header(data, FORMAT_BIT)
    stride = (d + 7) // 8
    if len(data) != _HEADER.size + n * stride:
        raise ValueError("bitmultivector binary value has the wrong size")
    packed = np.frombuffer(data, dtype=np.uint8, offset=_HEADER.size).reshape(n, stride)
    return np.unpackbits(packed, axis=1, count=d, bitorder="big").astype(bool)


def bits_to_text(value):
    """bitmultivector's text form: ``[0110...,1001...]``."""
    arr = np.asarray(value)
    bits = arr.astype(bool) if arr.dtype == bool else arr > 0
    return "[" + ",".join("".join("1" if b else "0" for b in row) for row in bits) + "]"


def bits_from_text(text):
    """A (N, D) bool array from bitmultivector's text form."""
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise ValueError("malformed bitmultivector: %r" % text[:40])
    rows = [r.strip() for r in body[1:-1].split(",")]
    return np.array([[c == "1" for c in r] for r in rows], dtype=bool)
