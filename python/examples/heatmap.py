#!/usr/bin/env python3
"""Draw where a page matched a query, as a PNG.

    heatmap.py --query "revenue by region" --out match.png
    heatmap.py --query "..." --document reports/q1.pdf --page 3 --out p3.png

Finds the best page for the query in a table loaded by colpali-ingest
(document, page, image, embedding) -- or takes the page named -- and asks
the server's colpali_explain which page patch each query token matched
best.  Every patch is shaded by the sum of the scores of the query tokens
that chose it; the strongest patch is outlined.  The query is encoded by the
server (colpali_query), so the model is the one colpali.model_path names.

The patch grid is ColPali's: the page is resized to a square and cut into
grid x grid patches, whose embeddings come first in the page's multivector
(32 x 32 = 1024 of 1030 rows for ColPali at 448 px).  --grid-width auto
takes the largest square that fits in the row count, which is that grid
for ColPali checkpoints.  Needs psycopg 3 and Pillow (Debian: python3-psycopg,
python3-pil).
"""

import argparse
import io
import sys

import psycopg
from psycopg import sql
from PIL import Image, ImageDraw

EXPLAIN_SQL = """
WITH q AS (SELECT colpali_query(%(query)s) AS q),
best AS (
    SELECT document, page, image, embedding, embedding <#> q.q AS distance
    FROM {table}, q
    WHERE embedding IS NOT NULL
      AND (%(document)s::text IS NULL OR document = %(document)s)
      AND (%(page)s::int IS NULL OR page = %(page)s)
    ORDER BY distance LIMIT 1)
SELECT b.document, b.page, b.image, b.distance, g.grid,
       e.query_row, e.patch_y, e.patch_x, e.score
FROM best b CROSS JOIN q
     CROSS JOIN LATERAL (SELECT coalesce(%(grid)s::int,
                                         floor(sqrt(num_vectors(b.embedding)))::int) AS grid) g
     CROSS JOIN LATERAL colpali_explain(b.embedding, q.q, g.grid) e
ORDER BY e.query_row
"""


def patch_heat(rows):
    """Sum of positive scores per (patch_y, patch_x); text rows (NULL) are left out."""
    heat = {}
    for r in rows:
        y, x, score = r[6], r[7], r[8]
        if y is None or x is None or score <= 0:
            continue
        heat[(y, x)] = heat.get((y, x), 0.0) + score
    return heat


def draw(page_png, grid, heat, caption, max_side):
    """The page with the heat of every patch over it, and a caption strip."""
    page = Image.open(io.BytesIO(page_png)).convert("RGB")
    scale = min(1.0, max_side / max(page.size))
    if scale < 1.0:
        page = page.resize((max(1, int(page.width * scale)), max(1, int(page.height * scale))),
                           Image.LANCZOS)
    w, h = page.size
    overlay = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    pen = ImageDraw.Draw(overlay)
    top = max(heat.values()) if heat else 0.0

    def box(y, x):
        return (int(x * w / grid), int(y * h / grid),
                int((x + 1) * w / grid) - 1, int((y + 1) * h / grid) - 1)

    for (y, x), value in heat.items():
        pen.rectangle(box(y, x), fill=(255, 40, 0, int(40 + 150 * value / top)))
    if heat:
        best = max(heat, key=heat.get)
        pen.rectangle(box(*best), outline=(255, 0, 0, 255), width=3)
    shaded = Image.alpha_composite(page.convert("RGBA"), overlay).convert("RGB")

    # the default bitmap font is 6 pixels wide: wrap the caption to the page
    width = max(10, (w - 12) // 6)
    caption = [line[i:i + width] for line in caption for i in range(0, max(len(line), 1), width)]
    strip = 18 * len(caption) + 8
    out = Image.new("RGB", (w, h + strip), "white")
    out.paste(shaded, (0, 0))
    text = ImageDraw.Draw(out)
    for i, line in enumerate(caption):
        text.text((6, h + 4 + 18 * i), line, fill=(0, 0, 0))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", default="", help="libpq connection string (default: PG* environment)")
    p.add_argument("--table", default="pages")
    p.add_argument("--query", required=True)
    p.add_argument("--document", help="this document's page instead of the best page")
    p.add_argument("--page", type=int, help="with --document: which page")
    p.add_argument("--grid-width", default="auto",
                   help="patches per row of the page grid (ColPali at 448 px: 32), or auto")
    p.add_argument("--max-side", type=int, default=640, help="longest side of the PNG drawn")
    p.add_argument("--out", required=True, help="PNG file to write")
    args = p.parse_args(argv)
    grid = None if args.grid_width == "auto" else int(args.grid_width)

    with psycopg.connect(args.dsn) as conn:
        table = sql.Identifier(*args.table.split("."))
        rows = conn.execute(sql.SQL(EXPLAIN_SQL).format(table=table),
                            {"query": args.query, "document": args.document,
                             "page": args.page, "grid": grid}).fetchall()
    if not rows:
        print("heatmap: no embedded page found", file=sys.stderr)
        return 1
    document, page, image, distance, grid = rows[0][:5]
    heat = patch_heat(rows)
    caption = ["query: %s" % args.query,
               "%s, page %d: MaxSim %.3f" % (document, page, -distance),
               "%d of %d query tokens matched best on an image patch (grid %d x %d)" % (
                   sum(1 for r in rows if r[6] is not None), len(rows), grid, grid)]
    draw(bytes(image), grid, heat, caption, args.max_side).save(args.out, optimize=True)
    print("%s page %d  maxsim %.4f  -> %s" % (document, page, -distance, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
