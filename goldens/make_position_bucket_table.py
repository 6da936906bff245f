"""Position-bucket table of IDEFICS2's variable-resolution vision embeddings, read off transformers.

Rerun (from the repository root, in the venv of goldens/requirements.txt):
    python goldens/make_position_bucket_table.py

For every grid of numPatchesPerSide P = 1..128 and every real patch count n = 1..128 along a side,
the bucket of each coordinate i = 0..n-1 as transformers' Idefics2VisionEmbeddings computes it:
boundaries torch.arange(1/P, 1.0, 1/P) (float32), coordinates arange(n) * (1.0 / n) clamped at
1 - 1e-6, torch.bucketize(right=True). The module itself is run (patch size 2, hidden size 1,
zero patch embedding, position embedding row k = k), so the ids come from transformers' code and
torch's kernels, not from a re-implementation.

Output: packages/mllm/test/fixtures/position_buckets.bin.gz, gzip of bytes:
for P = 1..128, for n = 1..128, for i = 0..n-1: bucket(P, n, i) (uint8; buckets are < P <= 128).
Header: none; the layout above is the format. The torch / transformers versions and the CPU
capability are printed and written to position_buckets.json, with a SHA-256 of the raw bytes.

Note: torch's float32 arange depends on the CPU kernel's vector width (8 floats on x86 AVX2 and
AVX512 builds, whose arange has no AVX512 variant): the values are those of x86 CPU torch.
"""
import gzip
import hashlib
import json
import pathlib

import torch
import transformers
from transformers.models.idefics2.configuration_idefics2 import Idefics2VisionConfig
from transformers.models.idefics2.modeling_idefics2 import Idefics2VisionEmbeddings

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "packages/mllm/test/fixtures"
MAX_P = 128
MAX_N = 128


def table_for(per_side: int) -> bytes:
    patch = 2
    cfg = Idefics2VisionConfig(hidden_size=1, image_size=per_side * patch, patch_size=patch, num_channels=1)
    emb = Idefics2VisionEmbeddings(cfg).eval()
    with torch.no_grad():
        emb.patch_embedding.weight.zero_()
        emb.patch_embedding.bias.zero_()
        emb.position_embedding.weight.copy_(torch.arange(per_side * per_side, dtype=torch.float32)[:, None])
    # one image per count n, its real patches the top-left n x n block of a MAX_N x MAX_N grid
    pam = torch.zeros(MAX_N, MAX_N, MAX_N, dtype=torch.bool)
    for n in range(1, MAX_N + 1):
        pam[n - 1, :n, :n] = True
    pv = torch.zeros(MAX_N, 1, MAX_N * patch, MAX_N * patch)
    with torch.no_grad():
        ids = emb(pv, pam)[:, :, 0].reshape(MAX_N, MAX_N, MAX_N)
    out = bytearray()
    for n in range(1, MAX_N + 1):
        # ids[r, c] = bucket(r) * P + bucket(c); the first row gives bucket(c), the first column bucket(r) * P
        row = ids[n - 1, 0, :n]
        col = ids[n - 1, :n, 0]
        assert torch.equal(row * per_side, col), (per_side, n)
        vals = [int(v) for v in row.tolist()]
        assert all(float(v) == x for v, x in zip(vals, row.tolist())) and all(0 <= v < max(per_side, 1) for v in vals)
        out += bytes(vals)
    return bytes(out)


def main():
    cap = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__} ({cap}), transformers {transformers.__version__}")
    raw = bytearray()
    for p in range(1, MAX_P + 1):
        raw += table_for(p)
    raw = bytes(raw)
    assert len(raw) == MAX_P * MAX_N * (MAX_N + 1) // 2
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "position_buckets.bin.gz").write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
    meta = {
        "about": "bucket(P, n, i) of transformers' Idefics2VisionEmbeddings for P = 1..128, n = 1..128, i < n; made by goldens/make_position_bucket_table.py",
        "layout": "uint8, for P in 1..128, for n in 1..128, for i in 0..n-1",
        "max_per_side": MAX_P,
        "max_count": MAX_N,
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "torch_version": torch.__version__,
        "cpu_capability": cap,
        "transformers_version": transformers.__version__,
    }
    (OUT / "position_buckets.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote position_buckets.bin.gz ({(OUT / 'position_buckets.bin.gz').stat().st_size} bytes, {len(raw)} raw)")


if __name__ == "__main__":
    main()
