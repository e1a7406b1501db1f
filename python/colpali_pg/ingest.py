"""colpali-ingest: load PDFs and page images into a colpali table.

    colpali-ingest [--create] [--table pages] [--embed database|later] PATH...

Every PATH is a PDF, an image (PNG, JPEG, GIF, BMP, TGA) or a folder searched
for them.  Each PDF page is rendered with poppler's ``pdftoppm``, one page at a
time (a PDF is never held in memory, only the page being loaded), and stored as
a row ``(document, page, image, embedding)``.  With ``--embed database`` (the
default) the pages are embedded by the server's ``colpali_images`` in the same
statement that stores them, a batch at a time (through the background worker's
batching where the server preloads colpali); ``--embed later`` stores the
images only, for a later ``CALL colpali_embed_images(...)``.

The run is resumable: pages already in the table are skipped, and every batch
is committed on its own.  A file that cannot be read, rendered or embedded is
reported on one line (``error: FILE: why``) and the run goes on with the next
file; the exit status is 1 when a file failed.  On a terminal, progress is a
bar with pages/s and the time left; otherwise one log line per batch.  While
it runs, ``SELECT * FROM colpali_progress`` shows it in any session.

Why Python and not C: the tool's work is plumbing -- running pdftoppm,
a database connection, a progress display -- where Python is short and
easy to change, and the expensive part, encoding, runs in the server either
way.  It needs only Debian packages (python3-psycopg, poppler-utils) and
ships with the colpali_pg client package.  pdftoppm rather than libpoppler
bindings: a crash or a hang on a hostile PDF stays in a child process and
becomes that file's error.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

import psycopg
from psycopg import sql

PDF_EXTENSIONS = {".pdf"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tga"}

# What the first bytes of each image format look like (TGA has no magic).
IMAGE_MAGIC = {
    ".png": [b"\x89PNG\r\n\x1a\n"],
    ".jpg": [b"\xff\xd8\xff"],
    ".jpeg": [b"\xff\xd8\xff"],
    ".gif": [b"GIF87a", b"GIF89a"],
    ".bmp": [b"BM"],
}

# SQLSTATE classes that are the run's failure, not one file's: out of
# resources, object not in prerequisite state (no model), operator
# intervention (cancel, shutdown), system errors, internal errors, syntax or
# access rule (the table), invalid transaction state, authorisation,
# connection.
FATAL_SQLSTATE_CLASSES = {"53", "55", "57", "58", "XX", "42", "25", "28", "08"}


class FileError(Exception):
    """A file that cannot be loaded; the run goes on with the next one."""


class Source:
    """One input file: its path, the document name stored, its page count."""

    def __init__(self, path, document, kind):
        self.path = path
        self.document = document
        self.kind = kind            # "pdf" or "image"
        self.pages = None           # set by count_pages
        self.todo = []              # page numbers not yet in the table


def find_sources(paths, errors):
    """Expand PATH arguments into Sources, in a stable order.

    Folders are walked recursively for files with a PDF or image extension;
    a document is named by its path relative to the argument's parent
    folder (so ``reports/2023/q1.pdf`` for ``colpali-ingest reports``)."""
    sources = []
    for arg in paths:
        arg = os.path.normpath(arg)
        base = os.path.dirname(os.path.abspath(arg))
        if os.path.isdir(arg):
            found = []
            for root, dirs, files in os.walk(arg):
                dirs.sort()
                for name in sorted(files):
                    if os.path.splitext(name)[1].lower() in PDF_EXTENSIONS | IMAGE_EXTENSIONS:
                        found.append(os.path.join(root, name))
            for path in found:
                sources.append(make_source(path, base))
        elif os.path.exists(arg):
            ext = os.path.splitext(arg)[1].lower()
            if ext not in PDF_EXTENSIONS | IMAGE_EXTENSIONS:
                errors.append((arg, "not a PDF or an image file (by its extension: %s)" % (ext or "none")))
                continue
            sources.append(make_source(arg, base))
        else:
            errors.append((arg, "no such file or folder"))
    # two files may not share a document name: the second would be taken
    # for pages already loaded
    named = {}
    unique = []
    for src in sources:
        if src.document in named:
            if os.path.samefile(named[src.document].path, src.path):
                continue
            errors.append((src.path, "its document name %s is already that of %s: load it from another folder"
                           % (src.document, named[src.document].path)))
            continue
        named[src.document] = src
        unique.append(src)
    return unique


def make_source(path, base):
    document = os.path.relpath(os.path.abspath(path), base).replace(os.sep, "/")
    kind = "pdf" if os.path.splitext(path)[1].lower() in PDF_EXTENSIONS else "image"
    return Source(path, document, kind)


def run_tool(argv, what):
    """Run a poppler tool; FileError with its message on failure."""
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    except OSError as e:
        raise FileError("%s: %s" % (argv[0], e.strerror))
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise FileError("%s failed: %s" % (what, msg[-1] if msg else "exit status %d" % proc.returncode))
    return proc.stdout


def count_pages(src):
    """Number of pages of a Source (pdfinfo for PDFs, 1 for an image)."""
    if src.kind == "image":
        return 1
    out = run_tool(["pdfinfo", src.path], "pdfinfo").decode("utf-8", "replace")
    for line in out.splitlines():
        if line.startswith("Pages:"):
            return int(line.split()[1])
    raise FileError("pdfinfo gave no page count")


def render_page(src, page, scale_to):
    """PNG bytes of one page: pdftoppm renders that page only, to stdout."""
    if src.kind == "image":
        with open(src.path, "rb") as f:
            data = f.read()
        ext = os.path.splitext(src.path)[1].lower()
        if ext in IMAGE_MAGIC and not any(data.startswith(m) for m in IMAGE_MAGIC[ext]):
            raise FileError("not a %s image (wrong header)" % ext[1:].upper())
        if not data:
            raise FileError("empty file")
        return data
    png = run_tool(["pdftoppm", "-f", str(page), "-l", str(page), "-png",
                    "-scale-to", str(scale_to), "-singlefile", src.path],
                   "pdftoppm (page %d)" % page)
    if not png.startswith(b"\x89PNG"):
        raise FileError("pdftoppm gave no image for page %d" % page)
    return png


def format_duration(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % (seconds // 60, seconds % 60)
    return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)


class Progress:
    """Progress display: a bar on a terminal, log lines otherwise."""

    def __init__(self, total, mode, stream):
        self.total = total
        self.done = 0
        self.failed = 0
        self.start = time.monotonic()
        self.stream = stream
        if mode == "auto":
            mode = "bar" if stream.isatty() else "log"
        self.mode = mode
        self.bar_shown = False

    def rate(self):
        elapsed = time.monotonic() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta(self):
        rate = self.rate()
        left = max(self.total - self.done - self.failed, 0)
        return format_duration(left / rate) if rate > 0 else "?"

    def advance(self, pages, what):
        self.done += pages
        if self.mode == "bar":
            width = 30
            frac = self.done / self.total if self.total else 1.0
            fill = int(width * frac)
            line = "\r[%s%s] %d/%d pages %.2f pages/s ETA %s  %s" % (
                "#" * fill, "." * (width - fill), self.done, self.total,
                self.rate(), self.eta(), what[-40:])
            cols = shutil.get_terminal_size((100, 20)).columns
            self.stream.write(line[:cols - 1].ljust(cols - 1))
            self.stream.flush()
            self.bar_shown = True
        elif self.mode == "log":
            self.stream.write("colpali-ingest: %d/%d pages, %.2f pages/s, ETA %s: %s\n" % (
                self.done, self.total, self.rate(), self.eta(), what))
            self.stream.flush()

    def message(self, text):
        """A line that must not be lost under the bar (errors, summary)."""
        if self.bar_shown:
            self.stream.write("\r\033[K")
            self.bar_shown = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self):
        if self.bar_shown:
            self.stream.write("\n")
            self.bar_shown = False


def table_ident(name):
    return sql.Identifier(*name.split("."))


def create_table(conn, table, dims):
    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} ("
        " document text NOT NULL,"
        " page integer NOT NULL,"
        " image bytea NOT NULL,"
        " embedding multivector({}),"
        " PRIMARY KEY (document, page))").format(table_ident(table), sql.Literal(dims)))
    # page images are PNG or JPEG already: compressing them again is wasted work
    conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN image SET STORAGE EXTERNAL").format(table_ident(table)))
    conn.commit()


def loaded_pages(conn, table, document):
    rows = conn.execute(sql.SQL("SELECT page FROM {} WHERE document = %s").format(table_ident(table)),
                        (document,)).fetchall()
    return {r[0] for r in rows}


def store_batch(conn, table, document, pages, images, embed):
    """Insert one batch of pages of a document, embedding them if asked.

    One statement: colpali_images encodes the whole batch in one call."""
    if embed == "database":
        query = sql.SQL(
            "INSERT INTO {} (document, page, image, embedding) "
            "SELECT %s, u.page, u.image, u.embedding "
            "FROM (SELECT %s::int[] AS p, %b::bytea[] AS i) AS v, "
            "LATERAL unnest(v.p, v.i, colpali_images(v.i)) AS u(page, image, embedding) "
            "ON CONFLICT (document, page) DO NOTHING").format(table_ident(table))
    else:
        query = sql.SQL(
            "INSERT INTO {} (document, page, image) "
            "SELECT %s, u.page, u.image FROM unnest(%s::int[], %b::bytea[]) AS u(page, image) "
            "ON CONFLICT (document, page) DO NOTHING").format(table_ident(table))
    conn.execute(query, (document, pages, images))


def is_fatal(err):
    state = getattr(err, "sqlstate", None) or ""
    return state[:2] in FATAL_SQLSTATE_CLASSES or isinstance(err, psycopg.OperationalError) and not state


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="colpali-ingest",
        description="Load PDFs and page images into a colpali table, one page per row: "
                    "(document, page, image, embedding).")
    p.add_argument("paths", nargs="+", metavar="PATH", help="PDF or image files, or folders holding them")
    p.add_argument("-d", "--dsn", default="",
                   help="libpq connection string (default: the PG* environment variables)")
    p.add_argument("-t", "--table", default="pages", help="table to load (default: pages)")
    p.add_argument("--create", action="store_true",
                   help="create the table if it does not exist")
    p.add_argument("--dims", type=int, default=128,
                   help="embedding dimensions of a table made by --create (default: 128)")
    p.add_argument("--embed", choices=["database", "later"], default="database",
                   help="database: embed with colpali_images as pages are stored (default); "
                        "later: store images only, embed later with CALL colpali_embed_images(...)")
    p.add_argument("-b", "--batch-size", type=int, default=8,
                   help="pages per statement and transaction (default: 8)")
    p.add_argument("--scale-to", type=int, default=896, metavar="PIXELS",
                   help="render PDF pages with their longer side this many pixels (default: 896; "
                        "ColPali looks at 448 x 448, ColQwen2 at up to about 780 x 780)")
    p.add_argument("--progress", choices=["auto", "bar", "log", "none"], default="auto",
                   help="auto: a bar on a terminal, log lines otherwise (default)")
    args = p.parse_args(argv)
    if args.batch_size < 1:
        p.error("--batch-size must be at least 1")
    if args.scale_to < 16:
        p.error("--scale-to must be at least 16")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = sys.stderr
    errors = []                      # (path, message) of files that failed

    def say(text):
        out.write(text + "\n")
        out.flush()

    sources = find_sources(args.paths, errors)
    if any(s.kind == "pdf" for s in sources) and shutil.which("pdftoppm") is None:
        say("colpali-ingest: pdftoppm not found: install poppler-utils (apt-get install poppler-utils)")
        return 2

    try:
        conn = psycopg.connect(args.dsn)
    except psycopg.Error as e:
        say("colpali-ingest: could not connect: %s" % str(e).strip())
        return 2

    with conn:
        try:
            if args.create:
                create_table(conn, args.table, args.dims)
            has_progress = conn.execute(
                "SELECT to_regprocedure('colpali_progress_report(regclass,text,bigint,bigint,bigint,integer)') IS NOT NULL"
            ).fetchone()[0]
            conn.commit()
            # what is left to do: every page not in the table yet
            total = 0
            skipped = 0
            usable = []
            for src in sources:
                try:
                    src.pages = count_pages(src)
                except FileError as e:
                    errors.append((src.path, str(e)))
                    continue
                have = loaded_pages(conn, args.table, src.document)
                src.todo = [p for p in range(1, src.pages + 1) if p not in have]
                skipped += src.pages - len(src.todo)
                total += len(src.todo)
                usable.append(src)
            conn.commit()
        except psycopg.Error as e:
            say("colpali-ingest: %s" % str(e).strip())
            return 2

        progress = Progress(total, args.progress, out)
        for path, msg in errors:
            progress.message("colpali-ingest: error: %s: %s" % (path, msg))
        if args.progress != "none":
            progress.message("colpali-ingest: %d pages to load from %d files into %s (%d already loaded)" % (
                total, len(usable), args.table, skipped))

        def report():
            nonlocal has_progress
            if not has_progress:
                return
            try:
                conn.execute("SELECT colpali_progress_report(%s::regclass, 'colpali-ingest', %s, %s, %s, %s)",
                             (args.table, total, progress.done, progress.failed, args.batch_size))
                conn.commit()
            except psycopg.errors.OutOfMemory as e:
                # no spare shared memory for the progress table: go on without it
                conn.rollback()
                has_progress = False
                progress.message("colpali-ingest: progress is not shown in colpali_progress: %s" % str(e).strip())

        interrupted = False
        try:
            report()
            for src in usable:
                todo = list(src.todo)
                try:
                    while todo:
                        batch, todo = todo[:args.batch_size], todo[args.batch_size:]
                        images = [render_page(src, p, args.scale_to) for p in batch]
                        try:
                            store_batch(conn, args.table, src.document, batch, images, args.embed)
                            conn.commit()
                        except psycopg.Error as e:
                            conn.rollback()
                            if is_fatal(e):
                                raise
                            raise FileError(str(e).strip().splitlines()[0])
                        del images
                        report()
                        progress.advance(len(batch), "%s p. %d-%d" % (src.document, batch[0], batch[-1])
                                         if src.kind == "pdf" else src.document)
                except FileError as e:
                    progress.failed += len(todo) + len(batch)
                    errors.append((src.path, str(e)))
                    progress.message("colpali-ingest: error: %s: %s" % (src.path, e))
        except KeyboardInterrupt:
            interrupted = True
            conn.rollback()
        except psycopg.Error as e:
            progress.finish()
            say("colpali-ingest: stopped: %s" % str(e).strip())
            say("colpali-ingest: %d pages loaded before the error; run again to resume" % progress.done)
            return 2
        progress.finish()
        if has_progress and not conn.closed:
            try:
                conn.execute("SELECT colpali_progress_end()")
                conn.commit()
            except psycopg.Error:
                pass

    elapsed = time.monotonic() - progress.start
    if args.progress != "none" or errors:
        failed_files = sorted({p for p, _ in errors})
        say("colpali-ingest: %s: %d pages loaded in %.1f s (%.2f pages/s), %d already there, %d files failed%s" % (
            "interrupted" if interrupted else "done", progress.done, elapsed,
            progress.done / elapsed if elapsed > 0 else 0.0, skipped, len(failed_files),
            (": " + ", ".join(failed_files)) if failed_files else ""))
    if interrupted:
        return 130
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
