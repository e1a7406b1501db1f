"""psycopg 3 adapters for multivector and its compact siblings."""
import numpy as np
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo

from .multivector import (bits_from_binary, bits_from_text, bits_to_binary, bits_to_text,
                          from_binary, from_text, half_from_binary, half_from_text,
                          half_to_binary, to_binary, to_text)


class HalfMultiVector:
    """Marks a 2-D array to be sent as halfmultivector (rounded to float16)."""

    def __init__(self, value):
        self.value = np.asarray(value)


class BitMultiVector:
    """Marks a 2-D array of bits (bool, or > 0 means 1) to be sent as bitmultivector."""

    def __init__(self, value):
        self.value = np.asarray(value)


def register_multivector(context):
    """Register multivector with a psycopg connection or cursor.

    numpy 2-D arrays are then sent as multivector (binary when the query asks
    for binary parameters, else text) and multivector values come back as
    (N, D) float32 arrays, in text and binary results alike.  The extension
    must be installed in the database.
    """
    info = TypeInfo.fetch(context, "multivector")
    if info is None:
        raise RuntimeError("type multivector not found: CREATE EXTENSION colpali first")

    class MultiVectorTextDumper(Dumper):
        format = Format.TEXT
        oid = info.oid

        def dump(self, obj):
            return to_text(obj).encode()

    class MultiVectorBinaryDumper(Dumper):
        format = Format.BINARY
        oid = info.oid

        def dump(self, obj):
            return to_binary(obj)

    class MultiVectorTextLoader(Loader):
        format = Format.TEXT

        def load(self, data):
            return from_text(bytes(data).decode())

    class MultiVectorBinaryLoader(Loader):
        format = Format.BINARY

        def load(self, data):
            return from_binary(data)

    adapters = context.adapters
    info.register(context)
    adapters.register_dumper(np.ndarray, MultiVectorTextDumper)
    adapters.register_dumper(np.ndarray, MultiVectorBinaryDumper)
    adapters.register_dumper("multivector", MultiVectorBinaryDumper)
    adapters.register_loader(info.oid, MultiVectorTextLoader)
    adapters.register_loader(info.oid, MultiVectorBinaryLoader)
    # COPY ... (FORMAT binary) looks dumpers up by type name
    adapters.types.add(info)
    _register_compact(context, "halfmultivector", HalfMultiVector, half_to_binary,
                      lambda v: to_text(np.asarray(v, dtype=np.float32)),
                      half_from_binary, half_from_text)
    _register_compact(context, "bitmultivector", BitMultiVector, bits_to_binary,
                      bits_to_text, bits_from_binary, bits_from_text)


def _register_compact(context, name, marker, to_bin, to_txt, from_bin, from_txt):
    """Adapters of one compact type, when the installed extension has it:
    values of the marker class (or numpy arrays in COPY columns of that
    type) are sent in its format; results come back as numpy arrays
    (float16 for halfmultivector, bool for bitmultivector)."""
    info = TypeInfo.fetch(context, name)
    if info is None:
        return

    def unwrap(obj):
        return obj.value if isinstance(obj, marker) else obj

    class TextDumper(Dumper):
        format = Format.TEXT
        oid = info.oid

        def dump(self, obj):
            return to_txt(unwrap(obj)).encode()

    class BinaryDumper(Dumper):
        format = Format.BINARY
        oid = info.oid

        def dump(self, obj):
            return to_bin(unwrap(obj))

    class TextLoader(Loader):
        format = Format.TEXT

        def load(self, data):
            return from_txt(bytes(data).decode())

    class BinaryLoader(Loader):
        format = Format.BINARY

        def load(self, data):
            return from_bin(data)

    adapters = context.adapters
    info.register(context)
    adapters.register_dumper(marker, TextDumper)
    adapters.register_dumper(marker, BinaryDumper)
    adapters.register_dumper(name, BinaryDumper)
    adapters.register_loader(info.oid, TextLoader)
    adapters.register_loader(info.oid, BinaryLoader)
    adapters.types.add(info)


def copy_rows(cursor, table, columns, types, rows):
    """Bulk-load rows with COPY ... FROM STDIN (FORMAT binary).

    columns and types are lists of column names and type names (use
    "multivector", "halfmultivector" or "bitmultivector" for numpy arrays); rows is an iterable of tuples.  Returns
    the number of rows written.
    """
    from psycopg import sql

    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
        sql.Identifier(*table.split(".")) if isinstance(table, str) else table,
        sql.SQL(", ").join(sql.Identifier(c) for c in columns))
    n = 0
    with cursor.copy(stmt) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)
            n += 1
    return n
