#!/usr/bin/env python3
"""bench/rle/check_decode.py: `pneumoseg rle decode` against an independent
numpy decode of the same CSV (issue 4's "done when").

    check_decode.py PNEUMOSEG CSV [WxH]

Runs `PNEUMOSEG rle decode CSV --out TMPDIR`, then decodes every row of CSV
itself (numpy, relative starts, column-major; rows of one ImageId united)
and compares each image's mask, pixel for pixel, with TMPDIR/<ImageId>.png
read by Pillow. Also checks that there is exactly one PNG per ImageId.
Prints a summary; exits 1 on any difference. Needs numpy and Pillow
(Debian: python3-numpy python3-pil).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image


def read_rows(path):
    """(ImageId, EncodedPixels) per data row: BOM, header, spaces, CRLF handled."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        first = True
        for line in f:
            line = line.strip()
            if not line:
                continue
            image_id, rle = (field.strip() for field in line.split(","))
            if first and image_id.lower() == "imageid":
                first = False
                continue
            first = False
            yield image_id, rle


def decode_union(rles, width, height):
    flat = np.zeros(width * height, dtype=np.uint8)  # column-major pixel order
    for rle in rles:
        if rle in ("", "-1"):
            continue
        values = np.array(rle.split(), dtype=np.int64)
        assert len(values) % 2 == 0, "odd number of values"
        starts, lengths = values[0::2], values[1::2]
        ends = np.cumsum(starts + lengths)
        assert ends[-1] <= flat.size, "run past the end"
        for s, e in zip((ends - lengths).tolist(), ends.tolist()):
            flat[s:e] = 255
    return flat.reshape(width, height).T  # row-major (height, width)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    pneumoseg, csv = sys.argv[1], sys.argv[2]
    width, height = (int(v) for v in (sys.argv[3] if len(sys.argv) > 3 else "1024x1024").split("x"))
    by_image = {}
    for image_id, rle in read_rows(csv):
        by_image.setdefault(image_id, []).append(rle)

    with tempfile.TemporaryDirectory(prefix="pnx-rle-check-") as out:
        subprocess.run([pneumoseg, "rle", "decode", csv, "--out", out, "--size",
                        "%dx%d" % (width, height), "-q"], check=True)
        pngs = {name[:-4] for name in os.listdir(out) if name.endswith(".png")}
        missing = sorted(set(by_image) - pngs)
        extra = sorted(pngs - set(by_image))
        differ = []
        positive = 0
        for image_id, rles in by_image.items():
            if image_id in missing:
                continue
            want = decode_union(rles, width, height)
            positive += bool(want.any())
            got = np.asarray(Image.open(os.path.join(out, image_id + ".png")).convert("L"))
            if got.shape != want.shape or not np.array_equal(got, want):
                differ.append(image_id)

    rows = sum(len(r) for r in by_image.values())
    print("%s: %d rows, %d images (%d with a mask): %d PNGs differ, %d missing, %d extra"
          % (csv, rows, len(by_image), positive, len(differ), len(missing), len(extra)))
    for image_id in (differ + missing + extra)[:10]:
        print("  mismatch:", image_id)
    sys.exit(1 if differ or missing or extra else 0)


if __name__ == "__main__":
    main()
