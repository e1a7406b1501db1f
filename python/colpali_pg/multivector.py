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
