"""colpali_pg: Python support for the colpali PostgreSQL extension.

Registers colpali's ``multivector`` type (and, where the extension has them,
``halfmultivector`` and ``bitmultivector``: send with the HalfMultiVector /
BitMultiVector markers, read back as float16 / bool arrays) with psycopg 3 so
that 2-D numpy arrays go in and come out (text and binary protocol), and gives
a binary COPY helper for bulk loads:

    import psycopg
    from colpali_pg import register_multivector, copy_rows

    conn = psycopg.connect(...)
    register_multivector(conn)
    conn.execute("INSERT INTO pages (id, emb) VALUES (%s, %s)", (1, page))  # page: (N, D) array
    rows = conn.execute("SELECT id FROM pages ORDER BY emb <#> %s LIMIT 10", (query,)).fetchall()
"""
from .multivector import (
    FORMAT_BIT,
    FORMAT_FLOAT32,
    FORMAT_HALF,
    bits_from_binary,
    bits_from_text,
    bits_to_binary,
    bits_to_text,
    from_binary,
    from_text,
    half_from_binary,
    half_from_text,
    half_to_binary,
    to_binary,
    to_text,
)
from .psycopg_support import BitMultiVector, HalfMultiVector, copy_rows, register_multivector

__all__ = [
    "BitMultiVector",
    "FORMAT_BIT",
    "FORMAT_FLOAT32",
    "FORMAT_HALF",
    "HalfMultiVector",
    "bits_from_binary",
    "bits_from_text",
    "bits_to_binary",
    "bits_to_text",
    "half_from_binary",
    "half_from_text",
    "half_to_binary",
    "copy_rows",
    "from_binary",
    "from_text",
    "register_multivector",
    "to_binary",
    "to_text",
]
__version__ = "0.2.0"
