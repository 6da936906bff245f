"""Writes safetensors fixtures with the reference implementation (the `safetensors` Python package).

Rerun: python goldens/make_safetensors_fixtures.py
Outputs packages/safetensors/test/fixtures/{reference.safetensors,reference.json}; with
--check FILE it instead loads a file written by userpref and prints its tensors as JSON.
"""
import json, sys, pathlib
import torch
from safetensors.torch import save_file, load_file

out = pathlib.Path(__file__).resolve().parents[1] / "packages/safetensors/test/fixtures"

if len(sys.argv) == 3 and sys.argv[1] == "--check":
    t = load_file(sys.argv[2])
    print(json.dumps({k: {"dtype": str(v.dtype), "shape": list(v.shape), "values": v.float().flatten().tolist()} for k, v in t.items()}))
    sys.exit(0)

g = torch.Generator().manual_seed(0)
tensors = {
    "model.embed.weight": torch.randn(3, 4, generator=g),
    "model.half": (torch.randn(5, generator=g) * 100).half(),
    "model.bf16": (torch.randn(2, 3, generator=g) * 1e-3).bfloat16(),
    "model.special": torch.tensor([0.0, -0.0, 65504.0, 1e-8, -2.5], dtype=torch.float16),
    "scalar": torch.tensor(3.5),
}
out.mkdir(parents=True, exist_ok=True)
save_file(tensors, str(out / "reference.safetensors"), metadata={"format": "pt", "note": "made by safetensors.torch"})
expected = {k: {"dtype": {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[v.dtype], "shape": list(v.shape), "values": v.float().flatten().tolist()} for k, v in tensors.items()}
(out / "reference.json").write_text(json.dumps(expected, indent=1))
print("wrote", out)
