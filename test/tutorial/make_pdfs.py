#!/usr/bin/env python3
"""Write a small folder of PDFs for the tutorial test: make_pdfs.py FOLDER

Two documents of a few pages each (titles, a bar chart, a table, text),
drawn with Pillow and saved with its PDF writer, a few tens of kB in all.
Pages are image-only PDFs; poppler renders them like any other."""
import os
import sys

from PIL import Image, ImageDraw

W, H = 612, 792          # US letter at 72 dpi


def page(title, lines, bars=None, table=None):
    im = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, W, 60), fill=(20, 60, 120))
    d.text((30, 22), title, fill="white")
    y = 90
    for line in lines:
        d.text((40, y), line, fill="black")
        y += 20
    if bars:
        base, left = 560, 80
        d.line((left - 10, 300, left - 10, base), fill="black", width=2)
        d.line((left - 10, base, W - 60, base), fill="black", width=2)
        for i, (label, value, colour) in enumerate(bars):
            x = left + i * 110
            d.rectangle((x, base - value * 2, x + 70, base), fill=colour)
            d.text((x + 10, base + 10), label, fill="black")
            d.text((x + 20, base - value * 2 - 16), str(value), fill="black")
    if table:
        y0 = 320
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                x = 60 + c * 160
                d.rectangle((x, y0 + r * 30, x + 160, y0 + r * 30 + 30), outline="black")
                d.text((x + 8, y0 + r * 30 + 9), cell, fill="black")
    return im


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    report = [
        page("Annual report 2023", ["Contents", "1. Revenue by region", "2. Outlook"]),
        page("1. Revenue by region in 2023 (million EUR)",
             ["Europe grew fastest; Asia is now the largest region."],
             bars=[("Europe", 95, (200, 40, 40)), ("Asia", 120, (40, 120, 200)),
                   ("Americas", 80, (40, 160, 80)), ("Africa", 30, (230, 160, 20))]),
        page("2. Outlook", ["We expect revenue to grow by 8 % in 2024.",
                            "Risks: currency, supply chain, interest rates."]),
    ]
    report[0].save(os.path.join(out, "annual-report-2023.pdf"), save_all=True,
                   append_images=report[1:], resolution=72)
    handbook = [
        page("Employee handbook", ["Holidays, travel and expenses"]),
        page("Travel expenses", ["Claims within 30 days, receipts attached."],
             table=[["Item", "Limit", "Receipt"], ["Hotel", "150 EUR/night", "yes"],
                    ["Meals", "40 EUR/day", "no"], ["Taxi", "60 EUR", "yes"]]),
    ]
    handbook[0].save(os.path.join(out, "handbook.pdf"), save_all=True,
                     append_images=handbook[1:], resolution=72)


if __name__ == "__main__":
    main()
