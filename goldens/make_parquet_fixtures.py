"""Writes the Pick-a-Pic fixtures of @userpref/dataset-pickapic with independent writers.

Rerun: python goldens/make_parquet_fixtures.py
Outputs plugins/dataset-pickapic/test/fixtures/:
  pickapic_pyarrow.parquet  Pick-a-Pic v2 columns written by pyarrow from pandas (as the published
                            shards were: __index_level_0__, snappy, several row groups)
  pickapic_duckdb.parquet   the same rows written by DuckDB's own parquet writer
  bad_missing_column.parquet, bad_wrong_type.parquet, bad_empty.parquet, bad_truncated.parquet
  paper_p4.pkl, paper_p5.pkl  the paper's processed release format (pandas DataFrame pickles,
                            protocol 4 and 5)
  expected.json             what a correct reader must find, computed here with pandas / PIL:
                            every row, the import reconciliation (first matching skip reason per
                            row, in the order no_label, not_different, tie, bad_label,
                            corrupt_image), the kept comparisons with sha256 image ids, and
                            decoded pixels of each image.
"""
import hashlib, io, json, pathlib, pickle
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import duckdb
from PIL import Image

out = pathlib.Path(__file__).resolve().parents[1] / "plugins/dataset-pickapic/test/fixtures"
out.mkdir(parents=True, exist_ok=True)


def two_tone(left, right, fmt, size=(8, 6)):
    """An image whose left half is `left` and right half `right` (so a resize is checkable)."""
    w, h = size
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[:, : w // 2] = left
    a[:, w // 2 :] = right
    buf = io.BytesIO()
    Image.fromarray(a, "RGB").save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


sha = lambda b: hashlib.sha256(b).hexdigest()

IMG = {
    "red_blue_png": two_tone((255, 0, 0), (0, 0, 255), "PNG"),
    "green_white_png": two_tone((0, 200, 0), (255, 255, 255), "PNG"),
    "black_yellow_png": two_tone((0, 0, 0), (250, 250, 0), "PNG"),
    "gray_jpeg": two_tone((128, 128, 128), (128, 128, 128), "JPEG"),
    "orange_jpeg": two_tone((240, 120, 10), (240, 120, 10), "JPEG"),
    "purple_png": two_tone((120, 0, 140), (120, 0, 140), "PNG", size=(5, 9)),
    "cyan_webp": None,  # filled below (WebP, lossless)
}
buf = io.BytesIO()
Image.fromarray(np.full((6, 6, 3), (0, 180, 200), dtype=np.uint8), "RGB").save(buf, format="WEBP", lossless=True)
IMG["cyan_webp"] = buf.getvalue()
CORRUPT = IMG["red_blue_png"][:40]  # a PNG cut inside its first chunk
NOT_AN_IMAGE = b"this is not an image at all"

# (user, caption, img0, img1, label_0, has_label, are_different)
ROWS = [
    (101, "a red cat", "red_blue_png", "green_white_png", 1.0, True, True),
    (101, "a red cat", "red_blue_png", "gray_jpeg", 0.0, True, True),  # red_blue reused: stored once
    (101, "ocean at night", "black_yellow_png", "orange_jpeg", 0.5, True, True),  # tie
    (101, "a castle", "purple_png", "cyan_webp", 0.0, True, True),
    (101, "forest", "gray_jpeg", "orange_jpeg", 1.0, True, True),
    (202, "a dog in the snow", "green_white_png", "black_yellow_png", 1.0, True, True),
    (202, "a dog in the snow", "orange_jpeg", "purple_png", 0.0, False, True),  # unlabelled
    (202, "sunset, oil painting", "cyan_webp", "red_blue_png", 0.0, True, True),
    (202, "a robot", "purple_png", "gray_jpeg", 1.0, True, True),
    (303, "mountains", "orange_jpeg", "orange_jpeg", 1.0, True, False),  # identical pair
    (303, "a blue car", "black_yellow_png", "CORRUPT", 0.0, True, True),  # corrupt jpg_1
    (303, "a blue car", "NOT_AN_IMAGE", "gray_jpeg", 1.0, True, True),  # not an image
    (303, "tea cup", "green_white_png", "cyan_webp", 1.0, True, True),
    (303, "tea cup", "cyan_webp", "red_blue_png", 0.0, True, True),
]


def img_bytes(name):
    return {"CORRUPT": CORRUPT, "NOT_AN_IMAGE": NOT_AN_IMAGE}.get(name) or IMG[name]


records = []
for i, (user, caption, a, b, l0, has_label, diff) in enumerate(ROWS):
    ja, jb = img_bytes(a), img_bytes(b)
    uid0, uid1 = f"{i:04d}-a-{a}", f"{i:04d}-b-{b}"
    records.append(
        {
            "are_different": diff,
            "best_image_uid": uid0 if l0 == 1.0 else (uid1 if l0 == 0.0 else ""),
            "caption": caption,
            "created_at": pd.Timestamp("2023-05-01 12:00:00") + pd.Timedelta(minutes=i),
            "has_label": has_label,
            "image_0_uid": uid0,
            "image_0_url": f"https://example.invalid/{uid0}.png",
            "image_1_uid": uid1,
            "image_1_url": f"https://example.invalid/{uid1}.png",
            "jpg_0": ja,
            "jpg_1": jb,
            "label_0": l0,
            "label_1": 1.0 - l0,
            "model_0": "sd-xl",
            "model_1": "sd-2.1",
            "ranking_id": 900000 + i,
            "user_id": user,
            "num_example_per_prompt": 2 if caption in ("a red cat", "a dog in the snow", "a blue car", "tea cup") else 1,
        }
    )
df = pd.DataFrame(records)
df.index = pd.RangeIndex(5000, 5000 + len(df)) * 3  # non-trivial pandas index -> __index_level_0__
df["label_0"] = df["label_0"].astype("float64")
df["created_at"] = df["created_at"].astype("datetime64[ns]")

table = pa.Table.from_pandas(df, preserve_index=True)
assert "__index_level_0__" in table.column_names
pq.write_table(table, out / "pickapic_pyarrow.parquet", row_group_size=4, compression="snappy")

con = duckdb.connect()
con.register("rows_tbl", table)
con.execute(
    f"COPY (SELECT * FROM rows_tbl) TO '{out / 'pickapic_duckdb.parquet'}' (FORMAT parquet, ROW_GROUP_SIZE 5, COMPRESSION gzip)"
)
# duckdb may reorder nothing here, but record what it wrote to be safe
duck_back = pq.read_table(out / "pickapic_duckdb.parquet").to_pandas()
assert list(duck_back["ranking_id"]) == list(df["ranking_id"]), "duckdb changed row order"

# Bad inputs
pq.write_table(table.drop_columns(["jpg_1"]), out / "bad_missing_column.parquet")
wrong = table.set_column(table.column_names.index("label_0"), "label_0", pa.array([str(v) for v in df["label_0"]], pa.string()))
pq.write_table(wrong, out / "bad_wrong_type.parquet")
(out / "bad_empty.parquet").write_bytes(b"")
full = (out / "pickapic_pyarrow.parquet").read_bytes()
(out / "bad_truncated.parquet").write_bytes(full[: len(full) * 2 // 3])


def decodes(b):
    try:
        im = Image.open(io.BytesIO(b))
        im.load()
        return True
    except Exception:
        return False


def skip_reason(r):
    if not r["has_label"]:
        return "no_label"
    if not r["are_different"]:
        return "not_different"
    if r["label_0"] == 0.5:
        return "tie"
    if r["label_0"] not in (0.0, 1.0):
        return "bad_label"
    if not decodes(r["jpg_0"]) or not decodes(r["jpg_1"]):
        return "corrupt_image"
    return None


counts = {"no_label": 0, "not_different": 0, "tie": 0, "bad_label": 0, "corrupt_image": 0}
kept, ties, all_rows = [], [], []
for (_, r) in df.iterrows():
    reason = skip_reason(r)
    row = {
        "ranking_id": int(r["ranking_id"]),
        "user_id": str(int(r["user_id"])),
        "caption": r["caption"],
        "label_0": float(r["label_0"]),
        "has_label": bool(r["has_label"]),
        "are_different": bool(r["are_different"]),
        "image_0_uid": r["image_0_uid"],
        "jpg_0_sha256": sha(r["jpg_0"]),
        "jpg_1_sha256": sha(r["jpg_1"]),
        "jpg_0_len": len(r["jpg_0"]),
        "created_at_ms": int(r["created_at"].value // 1_000_000),
        "skip": reason,
    }
    all_rows.append(row)
    if reason:
        counts[reason] += 1
    if reason is None:
        l0 = float(r["label_0"])
        kept.append({
            "ranking_id": row["ranking_id"], "user_id": row["user_id"], "prompt": row["caption"],
            "image0": row["jpg_0_sha256"], "image1": row["jpg_1_sha256"], "label0": l0,
            "liked": row["jpg_0_sha256"] if l0 == 1.0 else row["jpg_1_sha256"],
            "disliked": row["jpg_1_sha256"] if l0 == 1.0 else row["jpg_0_sha256"],
        })
    if reason == "tie":
        ties.append(row["ranking_id"])

images = {}
for name, b in IMG.items():
    im = Image.open(io.BytesIO(b)).convert("RGB")
    a = np.asarray(im)
    images[sha(b)] = {
        "name": name, "format": Image.open(io.BytesIO(b)).format, "width": im.width, "height": im.height,
        "left": a[:, 0].mean(axis=0).round(2).tolist(), "right": a[:, -1].mean(axis=0).round(2).tolist(),
    }

# The paper's processed release: one row per (user, target comparison), references inline.
def paper_frame():
    names = list(IMG)
    rows = []
    for k in range(4):
        refs = [(names[(k + j) % len(names)], names[(k + j + 2) % len(names)], f"ref prompt {k}-{j}") for j in range(3 + k % 2)]
        rows.append({
            "user_id": 7000 + k // 2,
            "reference_list": [IMG[a] for a, _, _ in refs],
            "reference_list_bad": [IMG[b] for _, b, _ in refs],
            "reference_prompt_list": [p for _, _, p in refs],
            "image0": IMG[names[(k + 1) % len(names)]],
            "image1": IMG[names[(k + 4) % len(names)]],
            "prompt": f"target prompt {k} \u00e9\u00e8 \u2603",
            "label0": [1, 0, 1, 0][k],
        })
    frame = pd.DataFrame(rows)
    # The release was pickled by pandas 1.x/2.x, where text columns are object dtype (pandas 3
    # would default to its new `str` dtype): keep the release's layout.
    frame["prompt"] = frame["prompt"].astype(object)
    return frame


pdf = paper_frame()
assert pdf["prompt"].dtype == object
for proto in (4, 5):
    pdf.to_pickle(out / f"paper_p{proto}.pkl", protocol=proto)
paper_expected = [
    {
        "user_id": str(int(r["user_id"])), "prompt": r["prompt"], "label0": float(r["label0"]),
        "image0": sha(r["image0"]), "image1": sha(r["image1"]),
        "liked": [sha(b) for b in r["reference_list"]], "disliked": [sha(b) for b in r["reference_list_bad"]],
        "reference_prompts": list(r["reference_prompt_list"]),
    }
    for _, r in pdf.iterrows()
]

expected = {
    "columns": [c for c in table.column_names],
    "rows": all_rows,
    "reconciliation": {"read": len(df), "kept": len(kept), "skipped": counts},
    "kept": kept,
    "ties": ties,
    "distinct_kept_images": len({x for c in kept for x in (c["image0"], c["image1"])}),
    "images": images,
    "pyarrow_row_groups": pq.ParquetFile(out / "pickapic_pyarrow.parquet").num_row_groups,
    "duckdb_row_groups": pq.ParquetFile(out / "pickapic_duckdb.parquet").num_row_groups,
    "truncated_bytes": len(full) * 2 // 3,
    "paper": paper_expected,
}
(out / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False))
print("wrote", out, sorted(p.name for p in out.iterdir()))
