"""Pillow's own Image.resize outputs for @userpref/imaging's bit-exactness test.

    python goldens/make_pil_resize_goldens.py packages/imaging/test/fixtures/pil-resize.json

Random 8-bit RGB images (seeded) of odd sizes, each resized with LANCZOS, BILINEAR and BICUBIC to
smaller, larger and one-axis-only sizes, plus a center crop. Inputs and outputs are stored as
base64 of the HWC uint8 bytes, with the Pillow version that made them.
"""
import base64
import json
import sys

import numpy as np
import PIL
from PIL import Image

rng = np.random.default_rng(20261203)
cases = []
for (h, w) in [(23, 37), (31, 31), (40, 13)]:
    # Smooth-ish content plus noise, so that every filter's rounding and clipping are exercised.
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), ((xx + yy) * 7) % 256], -1)
    arr = np.clip(base + rng.integers(-60, 61, size=(h, w, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    outs = []
    for name, resample in [("lanczos", Image.Resampling.LANCZOS), ("bilinear", Image.Resampling.BILINEAR), ("bicubic", Image.Resampling.BICUBIC)]:
        for (oh, ow) in [(h // 3 + 1, w // 2 + 1), (h * 2 + 3, w + 5), (h, w // 3 + 2), (h + 7, w)]:
            out = np.asarray(img.resize((ow, oh), resample))
            outs.append({"filter": name, "height": oh, "width": ow, "data": base64.b64encode(out.tobytes()).decode()})
    ch, cw = h - h // 4, w - w // 5
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = arr[top:top + ch, left:left + cw]
    cases.append({
        "height": h, "width": w, "data": base64.b64encode(arr.tobytes()).decode(), "resized": outs,
        "crop": {"height": ch, "width": cw, "data": base64.b64encode(np.ascontiguousarray(crop).tobytes()).decode()},
    })
json.dump({"pillow": PIL.__version__, "cases": cases}, open(sys.argv[1], "w"))
