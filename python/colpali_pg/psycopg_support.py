"""psycopg 3 adapters for multivector."""
import numpy as np
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo

from .multivector import from_binary, from_text, to_binary, to_text


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


def copy_rows(cursor, table, columns, types, rows):
    """Bulk-load rows with COPY ... FROM STDIN (FORMAT binary).

    columns and types are lists of column names and type names (use
    "multivector" for numpy arrays); rows is an iterable of tuples.  Returns
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
