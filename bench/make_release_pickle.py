"""A release-shaped pickle (SPEC section 6 columns) of about --gb GB, for `npm run bench -- import`.

The paper's release (bench_*_w_bad*.pkl) is pandas DataFrames pickled by pandas; the training
split is several GB per file, past the 2 GiB Node reads in one call. This writes such a file with
real pandas: 16 reference pairs per row, random-noise JPEGs (~110 KB) drawn from a pool of 300,
each cell its own bytes object so pandas writes every image out (identical objects would be
memoised once). Measuring it (the TypeScript side needs no Python):

    python bench/make_release_pickle.py --out data/bench_train_w_bad_split_0.pkl --gb 2.3
    USERPREF_BENCH_PICKLES=data/bench_train_w_bad_split_0.pkl npm run bench -- import

Needs numpy, pandas and pillow.
"""
import argparse
import io
import os

import numpy as np
import pandas as pd
from PIL import Image

ap = argparse.ArgumentParser()
ap.add_argument('--out', required=True)
ap.add_argument('--gb', type=float, default=2.3)
ap.add_argument('--seed', type=int, default=0)
args = ap.parse_args()

rng = np.random.default_rng(args.seed)
pool = []
for _ in range(300):
    buf = io.BytesIO()
    Image.fromarray((rng.random((384, 384, 3)) * 255).astype(np.uint8)).save(buf, format='JPEG', quality=85)
    pool.append(buf.getvalue())


def pick():
    b = pool[rng.integers(len(pool))]
    return b[:-1] + b[-1:]  # a new bytes object with the same content


per_row = 34 * float(np.mean([len(b) for b in pool]))
rows = []
for r in range(int(np.ceil(args.gb * 1e9 / per_row))):
    rows.append(dict(user_id=r % 40, reference_list=[pick() for _ in range(16)], reference_list_bad=[pick() for _ in range(16)],
                     reference_prompt_list=[f'prompt {r} {j}' for j in range(16)], image0=pick(), image1=pick(),
                     prompt=f'target {r}', label0=float(r % 2)))
pd.DataFrame(rows).to_pickle(args.out)
print(f'{args.out}: {len(rows)} rows, {os.path.getsize(args.out) / 1e9:.2f} GB')
