"""colpali_pg: Python support for the colpali PostgreSQL extension.

Registers colpali's ``multivector`` type with psycopg 3 so that 2-D numpy
arrays go in and come out (text and binary protocol), and gives a binary
COPY helper for bulk loads:

    import psycopg
    from colpali_pg import register_multivector, copy_rows

    conn = psycopg.connect(...)
    register_multivector(conn)
    conn.execute("INSERT INTO pages (id, emb) VALUES (%s, %s)", (1, page))  # page: (N, D) array
    rows = conn.execute("SELECT id FROM pages ORDER BY emb <#> %s LIMIT 10", (query,)).fetchall()
"""
from .multivector import (
    FORMAT_FLOAT32,
    from_binary,
    from_text,
    to_binary,
    to_text,
)
from .psycopg_support import copy_rows, register_multivector

__all__ = [
    "FORMAT_FLOAT32",
    "copy_rows",
    "from_binary",
    "from_text",
    "register_multivector",
    "to_binary",
    "to_text",
]
__version__ = "0.2.0"
