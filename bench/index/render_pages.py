#!/usr/bin/python3
"""Render document pages and questions about them for the encoder corpus.

    render_pages.py OUTDIR NPAGES NQUERIES [SEED]

Writes OUTDIR/pages/page_NNNNN.png (224 x 288 px), OUTDIR/pages.tsv (id,
file, company, layout, year, place) and OUTDIR/queries.tsv (qid, target page
id, text).  Needs only Pillow and the DejaVu fonts (Debian's python3-pil and
fonts-dejavu-core); nothing is committed, every page is regenerated from the
seed.

The pages are of the kinds the demo model (test/fixtures/models/demo) was
trained on, so that its rows mean something: the 40 invented companies of
test/fixtures/train_demo.py (same names and brand colours, regenerated here
by the same rules), each page one of four layouts (annual report, revenue
table, sales chart, registration form) with its own year, place, figures and
text.  Many pages share a company and a layout and differ only in details,
as real collections of reports do: the true top 10 of a query are mostly
near-ties among them, which is hard for an approximate index.  Queries are
the demo's paraphrase templates about one target page.
"""
import os
import random
import sys

from PIL import Image, ImageDraw, ImageFont

# the demo's vocabulary rules and seed (test/fixtures/train_demo.py)
DEMO_SEED = 20261206
FONT_DIR = "/usr/share/fonts/truetype/dejavu"
PAGE_W, PAGE_H = 224, 288
LAYOUTS = ["report", "table", "chart", "form"]
N_ENTITIES = 40
PALETTE = [(220, 30, 30), (30, 160, 40), (30, 60, 210), (240, 200, 0),
           (200, 40, 200), (0, 190, 200), (250, 120, 0), (40, 40, 40)]
LOGO_PAIRS = random.Random(7).sample(
    [(a, b) for a in range(8) for b in range(8) if a != b], N_ENTITIES)
FILLER = ("the company reported steady results across its markets while "
          "costs fell and new offices opened in several regions with strong "
          "demand for services and products during the period under review "
          "board members approved the plan for next year").split()
TEMPLATES = {
    "report": ["annual report of {e} for {y}", "what did {e} report in {y}?",
               "{e} yearly report summary", "overview of the year at {e}",
               "which page is the {e} annual report?"],
    "table": ["revenue of {e} in {y}",
              "table with the quarterly revenue of {e}",
              "how much revenue did {e} make in {y}?",
              "{e} revenue and cost figures by quarter",
              "total revenue of {e}"],
    "chart": ["which page has the chart of {e} sales?",
              "bar chart of {e} sales by quarter",
              "show the {e} sales graph for {y}",
              "plot of quarterly sales for {e}", "{e} sales chart"],
    "form": ["registration form of {e}", "where do I register with {e}?",
             "{e} application form to fill in",
             "form for new members of {e}", "sign up form {e} {p}"],
}
_FONTS = {}


def make_vocabulary(rng):
    """The demo's 40 company names and 16 places (same rules, same seed)."""
    onset = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t",
             "v", "z", "br", "cr", "dr", "gr", "pl", "st", "tr", "qu"]
    vowel = ["a", "e", "i", "o", "u", "ai", "ei", "ou"]
    coda = ["", "n", "r", "s", "x", "l", "nd", "rt", "m"]

    def word(nsyl):
        return "".join(rng.choice(onset) + rng.choice(vowel)
                       for _ in range(nsyl)) + rng.choice(coda)

    names = set()
    entities = []
    while len(entities) < N_ENTITIES:
        w = word(rng.randint(2, 3)).capitalize()
        if w not in names and 5 <= len(w) <= 9:
            names.add(w)
            entities.append(w)
    places = []
    while len(places) < 16:
        w = word(2).capitalize() + rng.choice(["ton", "burg", "ville",
                                               "port", "field", "haven"])
        if w not in names:
            names.add(w)
            places.append(w)
    return entities, places


def font(size, bold=False):
    key = (size, bold)
    if key not in _FONTS:
        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        _FONTS[key] = ImageFont.truetype(os.path.join(FONT_DIR, name), size)
    return _FONTS[key]


def draw_logo(d, x, y, s, shape):
    white = (255, 255, 255)
    d.rectangle((x, y, x + s, y + s), fill=white)
    x2 = x + s + 2
    if shape == 0:
        d.ellipse((x2, y, x2 + s, y + s), fill=white)
    elif shape == 1:
        d.rectangle((x2, y, x2 + s, y + s), fill=white)
    else:
        d.polygon([(x2 + s // 2, y), (x2 + s, y + s), (x2, y + s)],
                  fill=white)


def render(page, ent_index, rng):
    """One page from its facts; rng varies the details."""
    img = Image.new("RGB", (PAGE_W, PAGE_H), (255, 255, 255))
    d = ImageDraw.Draw(img)
    a, b = LOGO_PAIRS[ent_index]
    color, color2 = PALETTE[a], PALETTE[b]
    hb = 56 + rng.randint(-4, 4)
    split = PAGE_W // 2 + rng.randint(-10, 10)
    d.rectangle((0, 0, split, hb), fill=color)
    d.rectangle((split, 0, PAGE_W, hb), fill=color2)
    draw_logo(d, 8, 8, 20, ent_index % 3)
    d.text((8, hb - 22), page["entity"], fill=(255, 255, 255),
           font=font(16, bold=True))
    d.text((split + 8, hb - 18), page["place"], fill=(255, 255, 255),
           font=font(10))
    d.text((12, hb + 8), page["title"], fill=(0, 0, 0),
           font=font(13, bold=True))
    lay = page["layout"]
    top = hb + 32
    if lay == "report":
        y = top
        while y < PAGE_H - 20:
            words = [rng.choice(FILLER) for _ in range(rng.randint(4, 6))]
            if rng.random() < 0.3:
                words.insert(rng.randint(0, len(words)), page["entity"])
            d.text((12, y), " ".join(words), fill=(40, 40, 40), font=font(10))
            y += 14 + (8 if rng.random() < 0.2 else 0)
    elif lay == "table":
        cw = (PAGE_W - 24) // 3
        d.rectangle((12, top, PAGE_W - 12, top + 18), fill=(215, 225, 240))
        for c, h in enumerate(["Quarter", "Revenue", "Cost"]):
            d.text((16 + c * cw, top + 3), h, fill=(0, 0, 0),
                   font=font(10, bold=True))
        total = 0
        for r in range(4):
            rev = rng.randint(100, 9999) * 1000
            total += rev
            y = top + 18 + r * 22
            d.line((12, y, PAGE_W - 12, y), fill=(120, 120, 120), width=1)
            for c, v in enumerate((f"Q{r + 1} {page['year']}", f"{rev:,}",
                                   f"{int(rev * rng.uniform(0.4, 0.9)):,}")):
                d.text((16 + c * cw, y + 5), v, fill=(20, 20, 20),
                       font=font(10))
        yb = top + 18 + 4 * 22
        d.line((12, yb, PAGE_W - 12, yb), fill=(0, 0, 0), width=2)
        d.text((16, yb + 6), f"Total {total:,} USD", fill=(0, 0, 0),
               font=font(11, bold=True))
    elif lay == "chart":
        ox, oy = 30, PAGE_H - 40
        cw, ch = PAGE_W - 50, PAGE_H - 150
        d.line((ox, oy, ox + cw, oy), fill=(0, 0, 0), width=2)
        d.line((ox, oy, ox, oy - ch), fill=(0, 0, 0), width=2)
        bw = cw // 8
        for i in range(4):
            v = rng.uniform(0.2, 1.0)
            x = ox + bw // 2 + 2 * bw * i
            d.rectangle((x, oy - int(v * ch), x + bw, oy - 1), fill=color)
            d.text((x, oy + 4), f"Q{i + 1}", fill=(0, 0, 0), font=font(9))
    else:
        y = top
        for label, val in (("Name", page["entity"]), ("City", page["place"]),
                           ("Date", f"{page['year']}-0{rng.randint(1, 9)}-1"
                                    f"{rng.randint(0, 9)}"),
                           ("Signature", "")):
            d.text((12, y), label + ":", fill=(0, 0, 0), font=font(10))
            d.rectangle((80, y - 2, PAGE_W - 14, y + 14), outline=(0, 0, 0))
            if val:
                d.text((84, y), val, fill=(30, 30, 160), font=font(10))
            y += 30
        for opt in ("New member", "Renewal"):
            d.rectangle((14, y, 24, y + 10), outline=(0, 0, 0))
            if rng.random() < 0.5:
                d.line((14, y, 24, y + 10), fill=(0, 0, 0))
            d.text((30, y - 1), opt, fill=(0, 0, 0), font=font(10))
            y += 20
    return img


def title(layout, ent, year):
    return {"report": f"{ent} Annual Report {year}",
            "table": f"{ent} Revenue {year}",
            "chart": f"{ent} Sales {year}",
            "form": f"{ent} Registration Form"}[layout]


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__.splitlines()[2])
    out, npages, nq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 42
    entities, places = make_vocabulary(random.Random(DEMO_SEED))
    rng = random.Random(seed)
    os.makedirs(os.path.join(out, "pages"), exist_ok=True)
    pages = []
    with open(os.path.join(out, "pages.tsv"), "w") as f:
        for pid in range(1, npages + 1):
            ei = rng.randrange(N_ENTITIES)
            page = {"id": pid, "entity": entities[ei],
                    "layout": rng.choice(LAYOUTS),
                    "year": rng.randint(2012, 2025),
                    "place": rng.choice(places)}
            page["title"] = title(page["layout"], page["entity"], page["year"])
            name = f"pages/page_{pid:05d}.png"
            render(page, ei, rng).save(os.path.join(out, name))
            pages.append(page)
            f.write(f"{pid}\t{name}\t{page['entity']}\t{page['layout']}\t"
                    f"{page['year']}\t{page['place']}\n")
    with open(os.path.join(out, "queries.tsv"), "w") as f:
        for qid in range(1, nq + 1):
            page = rng.choice(pages)
            t = rng.choice(TEMPLATES[page["layout"]])
            text = t.format(e=page["entity"], y=page["year"], p=page["place"])
            f.write(f"{qid}\t{page['id']}\t{text}\n")


if __name__ == "__main__":
    main()
