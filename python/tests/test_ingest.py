"""Tests of colpali-ingest against a real database (the PG* environment).

PDFs are drawn with Pillow at test time; pages are rendered by poppler's
pdftoppm, as in use.  Most tests store images only (--embed later), which
needs no model; the database-embedding path is exercised by the tutorial
test (test/t/062_tutorial.pl) with the fixture model.
"""
import os
import struct
import subprocess
import sys
import time

import psycopg
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image, ImageDraw  # noqa: E402

if subprocess.run(["sh", "-c", "command -v pdftoppm"], stdout=subprocess.DEVNULL).returncode != 0:
    pytest.skip("pdftoppm (poppler-utils) not installed", allow_module_level=True)

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_pdf(path, pages):
    ims = []
    for i in range(pages):
        im = Image.new("RGB", (300, 400), "white")
        d = ImageDraw.Draw(im)
        d.text((20, 20 + 30 * i), "page %d of %s" % (i + 1, os.path.basename(path)), fill="black")
        d.rectangle((50, 150, 50 + 40 * (i + 1), 250), fill=(200, 30, 30))
        ims.append(im)
    ims[0].save(path, save_all=True, append_images=ims[1:], resolution=72)


def make_png(path, size=(64, 48)):
    Image.new("RGB", size, (10, 200, 30)).save(path)


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def ingest(*args, env=None):
    e = dict(os.environ)
    e["PYTHONPATH"] = PYTHON_DIR + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env or {})
    # bytes, decoded by hand: text mode would turn the bar's \r into \n
    r = subprocess.run([sys.executable, "-m", "colpali_pg.ingest", *args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
    r.stdout, r.stderr = r.stdout.decode(), r.stderr.decode()
    return r


@pytest.fixture
def conn():
    with psycopg.connect(autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS colpali")
        c.execute("DROP TABLE IF EXISTS ingest_t")
        yield c
        c.execute("DROP TABLE IF EXISTS ingest_t")


def rows(conn):
    return conn.execute("SELECT document, page FROM ingest_t ORDER BY 1, 2").fetchall()


def test_loads_pdfs_and_images_then_resumes(conn, tmp_path):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    make_pdf(str(docs / "a.pdf"), 3)
    make_pdf(str(docs / "sub" / "b.pdf"), 2)
    make_png(str(docs / "c.png"))
    r = ingest("--create", "--embed", "later", "--table", "ingest_t", str(docs))
    assert r.returncode == 0, r.stderr
    assert rows(conn) == [("docs/a.pdf", 1), ("docs/a.pdf", 2), ("docs/a.pdf", 3),
                          ("docs/c.png", 1), ("docs/sub/b.pdf", 1), ("docs/sub/b.pdf", 2)]
    assert "6 pages to load from 3 files into ingest_t (0 already loaded)" in r.stderr
    # the image file is stored as it is, PDF pages as PNGs
    img = conn.execute("SELECT image FROM ingest_t WHERE document = 'docs/c.png'").fetchone()[0]
    assert bytes(img) == (docs / "c.png").read_bytes()
    assert conn.execute("SELECT count(*) FROM ingest_t WHERE embedding IS NULL").fetchone()[0] == 6

    # a second run after losing one page loads that page only, leaving the rest alone
    before = dict(((d, p), x) for d, p, x in conn.execute("SELECT document, page, xmin::text FROM ingest_t"))
    conn.execute("DELETE FROM ingest_t WHERE document = 'docs/a.pdf' AND page = 2")
    r = ingest("--embed", "later", "--table", "ingest_t", str(docs))
    assert r.returncode == 0, r.stderr
    assert "1 pages to load from 3 files into ingest_t (5 already loaded)" in r.stderr
    assert "done: 1 pages loaded" in r.stderr
    after = dict(((d, p), x) for d, p, x in conn.execute("SELECT document, page, xmin::text FROM ingest_t"))
    assert set(after) == set(before)
    assert {k for k in after if after[k] != before[k]} == {("docs/a.pdf", 2)}

    # and a third run has nothing to do
    r = ingest("--embed", "later", "--table", "ingest_t", str(docs))
    assert r.returncode == 0 and "0 pages to load from 3 files into ingest_t (6 already loaded)" in r.stderr


def test_renders_at_the_requested_size(conn, tmp_path):
    make_pdf(str(tmp_path / "a.pdf"), 1)
    r = ingest("--create", "--embed", "later", "--table", "ingest_t", "--scale-to", "320", str(tmp_path / "a.pdf"))
    assert r.returncode == 0, r.stderr
    doc, img = conn.execute("SELECT document, image FROM ingest_t").fetchone()
    assert doc == "a.pdf"
    w, h = png_size(bytes(img))
    assert max(w, h) == 320 and abs(w / h - 300 / 400) < 0.01


def test_a_bad_file_is_reported_and_the_run_goes_on(conn, tmp_path):
    make_pdf(str(tmp_path / "good.pdf"), 2)
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 this is not really a PDF")
    (tmp_path / "notpng.png").write_bytes(b"GIF89a....")
    make_png(str(tmp_path / "ok.png"))
    r = ingest("--create", "--embed", "later", "--table", "ingest_t", str(tmp_path), str(tmp_path / "missing.pdf"))
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines() if ": error: " in l]
    assert len(errors) == 3, r.stderr
    assert any(l.startswith("colpali-ingest: error: %s: pdfinfo failed" % (tmp_path / "bad.pdf")) for l in errors)
    assert any(l.startswith("colpali-ingest: error: %s: not a PNG image" % (tmp_path / "notpng.png")) for l in errors)
    assert any(l.startswith("colpali-ingest: error: %s: no such file" % (tmp_path / "missing.pdf")) for l in errors)
    name = tmp_path.name
    assert rows(conn) == [(name + "/good.pdf", 1), (name + "/good.pdf", 2), (name + "/ok.png", 1)]
    assert "3 files failed" in r.stderr.splitlines()[-1]


def test_two_files_with_one_document_name(conn, tmp_path):
    (tmp_path / "x" / "papers").mkdir(parents=True)
    (tmp_path / "y" / "papers").mkdir(parents=True)
    make_pdf(str(tmp_path / "x" / "papers" / "a.pdf"), 1)
    make_pdf(str(tmp_path / "y" / "papers" / "a.pdf"), 2)
    r = ingest("--create", "--embed", "later", "--table", "ingest_t",
               str(tmp_path / "x" / "papers"), str(tmp_path / "y" / "papers"), str(tmp_path / "x" / "papers"))
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines() if ": error: " in l]
    assert errors == ["colpali-ingest: error: %s: its document name papers/a.pdf is already that of %s: "
                      "load it from another folder" % (tmp_path / "y" / "papers" / "a.pdf",
                                                       tmp_path / "x" / "papers" / "a.pdf")]
    assert rows(conn) == [("papers/a.pdf", 1)]


def test_progress_is_log_lines_unless_a_bar_is_asked_for(conn, tmp_path):
    make_pdf(str(tmp_path / "a.pdf"), 5)
    r = ingest("--create", "--embed", "later", "--table", "ingest_t", "--batch-size", "2", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if " pages/s, ETA " in l]
    assert [l.split(": ")[1].split(",")[0] for l in lines] == ["2/5 pages", "4/5 pages", "5/5 pages"]
    assert lines[-1].endswith(": %s/a.pdf p. 5-5" % tmp_path.name)

    conn.execute("DELETE FROM ingest_t")
    r = ingest("--embed", "later", "--table", "ingest_t", "--progress", "bar", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("\r[") == 1 and "] 5/5 pages " in r.stderr and " pages/s ETA " in r.stderr


def test_the_run_shows_in_colpali_progress(conn, tmp_path):
    make_pdf(str(tmp_path / "a.pdf"), 4)
    conn.execute("""
        CREATE TABLE ingest_t (document text, page int, image bytea, embedding multivector(128),
                               PRIMARY KEY (document, page));
        CREATE OR REPLACE FUNCTION ingest_t_slow() RETURNS trigger LANGUAGE plpgsql
            AS $$BEGIN PERFORM pg_sleep(0.4); RETURN NEW; END$$;
        CREATE TRIGGER slow BEFORE INSERT ON ingest_t FOR EACH ROW EXECUTE FUNCTION ingest_t_slow();
    """)
    e = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    proc = subprocess.Popen([sys.executable, "-m", "colpali_pg.ingest", "--embed", "later", "--table", "ingest_t",
                             "--batch-size", "1", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, text=True)
    seen = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        seen = conn.execute("""SELECT relid::regclass::text, phase, images_total, images_done, batch_size
                               FROM colpali_progress WHERE images_done BETWEEN 1 AND 3""").fetchone()
        if seen:
            break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert seen is not None and seen[:3] == ("ingest_t", "colpali-ingest", 4) and seen[4] == 1
    assert conn.execute("SELECT count(*) FROM colpali_progress").fetchone()[0] == 0
    conn.execute("DROP FUNCTION ingest_t_slow() CASCADE")


def test_no_model_stops_the_run_with_a_clear_message(conn, tmp_path):
    conn.execute("LOAD 'colpali'")
    if conn.execute("SELECT current_setting('colpali.model_path', true)").fetchone()[0]:
        pytest.skip("a model is configured on this server")
    make_pdf(str(tmp_path / "a.pdf"), 2)
    make_pdf(str(tmp_path / "b.pdf"), 2)
    r = ingest("--create", "--table", "ingest_t", str(tmp_path))
    assert r.returncode == 2
    assert "colpali-ingest: stopped: " in r.stderr and "model" in r.stderr
    assert "0 pages loaded before the error; run again to resume" in r.stderr
    assert rows(conn) == []
