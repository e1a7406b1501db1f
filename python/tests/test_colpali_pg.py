"""Tests of colpali_pg against a real database.

Connection from the usual libpq environment (PGHOST, PGPORT, PGUSER,
PGDATABASE); the colpali extension must be installable there.  The ranking
check uses numpy as the independent reference for MaxSim.
"""
import numpy as np
import psycopg
import pytest

from colpali_pg import copy_rows, from_binary, from_text, register_multivector, to_binary, to_text

RNG = np.random.default_rng(7)


def unit_rows(n, d):
    x = RNG.standard_normal((n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def same_bits(a, b):
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    return a.shape == b.shape and bool((a.view(np.uint32) == b.view(np.uint32)).all())


EDGE = np.array([[0.0, -0.0, 1e-45, -1.1754942e-38],
                 [3.4028235e38, -3.4028235e38, 0.1, 1 / 3]], dtype=np.float32)


@pytest.fixture(scope="module")
def conn():
    with psycopg.connect(autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS pytest_pages")
        c.execute("CREATE EXTENSION IF NOT EXISTS colpali")
        register_multivector(c)
        yield c
        c.execute("DROP TABLE IF EXISTS pytest_pages")


def test_codecs_round_trip_bit_exact():
    for arr in (EDGE, unit_rows(7, 16)):
        assert same_bits(from_binary(to_binary(arr)), arr)
        assert same_bits(from_text(to_text(arr)), arr)


def test_codecs_reject_bad_shapes():
    with pytest.raises(ValueError):
        to_binary(np.zeros(4, dtype=np.float32))
    with pytest.raises(ValueError):
        from_binary(b"\x00\x02\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00")  # 1 row of 2 announced, no data


@pytest.mark.parametrize("binary", [False, True])
def test_server_round_trip(conn, binary):
    for arr in (EDGE, unit_rows(30, 128)):
        cur = conn.cursor(binary=binary)
        got = cur.execute("SELECT %s::multivector", (arr,)).fetchone()[0]
        assert isinstance(got, np.ndarray) and got.dtype == np.float32
        assert same_bits(got, arr)
        # the server's own text form reads back exactly too
        text = conn.execute("SELECT %s::multivector::text", (arr,)).fetchone()[0]
        assert same_bits(from_text(text), arr)


def test_copy_and_rank_like_numpy(conn):
    conn.execute("CREATE TABLE pytest_pages (id int PRIMARY KEY, emb multivector(32))")
    pages = {i: unit_rows(int(RNG.integers(5, 40)), 32) for i in range(60)}
    with conn.cursor() as cur:
        n = copy_rows(cur, "pytest_pages", ["id", "emb"], ["int4", "multivector"], pages.items())
    assert n == 60
    stored = dict(conn.execute("SELECT id, emb FROM pytest_pages").fetchall())
    assert all(same_bits(stored[i], pages[i]) for i in pages)

    query = unit_rows(6, 32)
    ids = [r[0] for r in conn.execute(
        "SELECT id FROM pytest_pages ORDER BY emb <#> %s LIMIT 10", (query,)).fetchall()]
    ref = sorted(pages, key=lambda i: -float((query @ pages[i].T).max(axis=1).astype(np.float64).sum()))[:10]
    assert ids == ref
    # and with the index
    conn.execute("CREATE INDEX ON pytest_pages USING mvivf (emb) WITH (lists = 4)")
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute("SET LOCAL mvivf.rerank = 1000")
        ids_idx = [r[0] for r in conn.execute(
            "SELECT id FROM pytest_pages ORDER BY emb <#> %s LIMIT 10", (query,)).fetchall()]
    assert ids_idx == ref


def test_server_rejects_what_the_type_rejects(conn):
    with pytest.raises(psycopg.DataError):
        conn.execute("SELECT %s::multivector", (np.array([[1.0, np.nan]], dtype=np.float32),))
    with pytest.raises(psycopg.DataError):
        conn.execute("SELECT %s::multivector(3)", (unit_rows(2, 4),))


# ---- compact formats ----

from colpali_pg import (BitMultiVector, HalfMultiVector, bits_from_binary, bits_to_binary,  # noqa: E402
                        half_from_binary, half_to_binary)


def test_compact_codecs():
    a = unit_rows(9, 19)
    assert (half_from_binary(half_to_binary(a)) == a.astype(np.float16)).all()
    bits = a > 0
    assert (bits_from_binary(bits_to_binary(bits)) == bits).all()
    with pytest.raises(ValueError):
        half_to_binary(np.array([[70000.0]], dtype=np.float32))   # beyond float16, as the server says


@pytest.mark.parametrize("binary", [False, True])
def test_compact_server_round_trip(conn, binary):
    a = unit_rows(20, 128)
    cur = conn.cursor(binary=binary)
    # the server rounds float -> half to nearest even, as numpy does
    got = cur.execute("SELECT %s::halfmultivector, %s::multivector::halfmultivector",
                      (HalfMultiVector(a), a)).fetchone()
    assert got[0].dtype == np.float16 and (got[0] == a.astype(np.float16)).all()
    assert (got[1] == a.astype(np.float16)).all()
    # float -> binary takes the sign (0 -> 1 in the server's cast; no zeros here)
    got = cur.execute("SELECT %s::bitmultivector, %s::multivector::bitmultivector",
                      (BitMultiVector(a > 0), a)).fetchone()
    assert got[0].dtype == bool and (got[0] == (a > 0)).all()
    assert (got[1] == (a > 0)).all()


def test_compact_copy(conn):
    conn.execute("DROP TABLE IF EXISTS pytest_compact")
    conn.execute("CREATE TABLE pytest_compact (id int, h halfmultivector(64), b bitmultivector(64))")
    pages = [unit_rows(3 + i, 64) for i in range(5)]
    with conn.cursor() as cur:
        n = copy_rows(cur, "pytest_compact", ["id", "h", "b"], ["int4", "halfmultivector", "bitmultivector"],
                      ((i, p, p > 0) for i, p in enumerate(pages)))
    assert n == 5
    for binary in (False, True):
        rows = conn.cursor(binary=binary).execute("SELECT id, h, b FROM pytest_compact ORDER BY id").fetchall()
        for (i, h, b), p in zip(rows, pages):
            assert (h == p.astype(np.float16)).all() and (b == (p > 0)).all()
    conn.execute("DROP TABLE pytest_compact")
