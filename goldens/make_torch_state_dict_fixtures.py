"""Writes real `torch.save(module.state_dict())` fixtures for packages/pickle (issue 17, item 4).

Rerun (from the repository root, with goldens/requirements.txt):
    python goldens/make_torch_state_dict_fixtures.py

A state_dict() is an OrderedDict that carries a `_metadata` attribute (per-module versions). Pickled,
that is `OrderedDict()` + SETITEMS + BUILD {'_metadata': OrderedDict(...)}: the BUILD sets an
attribute on the dict. The files are made from real nn.Modules by torch itself, never by hand:

- prompt_pool_state_dict{,_legacy}.pt: state_dict() of the paper's PromptPool stand-in (the
  preference-token parameter `prompt`, here 5 x 16);
- module_state_dict{,_legacy}.pt: state_dict() of a small nn.Module with several tensors: Linear
  weight/bias, a BatchNorm1d (its version is 2 in _metadata, int64 num_batches_tracked), a float16
  parameter, a weight tied between two submodules (one storage, two keys), buffers that are
  non-contiguous / offset views of a parameter's storage, a non-persistent buffer (absent from
  state_dict) and an empty tensor.

The expected values (dtype, shape, values, storage offset, stride, which keys share a storage, and
the `_metadata` attribute) are written to *.json from torch's own objects.
"""
import json
import math
import pathlib
import sys
import tempfile

import torch
import torch.nn as nn

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "packages/pickle/test/fixtures"

PROMPT_POOL_PY = '''import torch
import torch.nn as nn


class PromptPool(nn.Module):
    """Small stand-in for the paper's prompt_pool.PromptPool (length x 4096 in the paper)."""

    def __init__(self, length=5, dim=16):
        super().__init__()
        self.prompt = nn.Parameter(torch.randn(length, dim) * 0.02)
'''


class Block(nn.Module):
    def __init__(self, shared: nn.Parameter):
        super().__init__()
        self.weight = shared  # tied with Net.head.weight


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(7)
        self.lin = nn.Linear(6, 4)
        self.norm = nn.BatchNorm1d(4)
        self.head = nn.Linear(4, 3, bias=False)
        self.tied = Block(self.head.weight)
        self.h16 = nn.Parameter(torch.randn(3, 2, generator=g).half())
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(4, 6, generator=g))
            self.lin.bias.copy_(torch.randn(4, generator=g))
            self.head.weight.copy_(torch.randn(3, 4, generator=g))
        # views of lin.weight's storage: transposed (non-contiguous) and sliced (storage offset)
        self.register_buffer("lin_t", self.lin.weight.detach().t())
        self.register_buffer("lin_cols", self.lin.weight.detach()[1:, ::2])
        self.register_buffer("scratch", torch.zeros(2), persistent=False)
        self.register_buffer("empty", torch.zeros(0, 3))
        # a few batch-norm updates so its running stats and counter are not the initial values
        self.norm.train()
        for _ in range(3):
            self.norm(torch.randn(5, 4, generator=g))


def enc_float(v: float):
    if math.isnan(v):
        return {"$float": "nan"}
    if math.isinf(v):
        return {"$float": "inf" if v > 0 else "-inf"}
    return v


def tensor_json(t):
    return {
        "dtype": str(t.dtype).replace("torch.", ""),
        "shape": list(t.shape),
        "storage_offset": t.storage_offset(),
        "stride": list(t.stride()),
        # float64 holds every float16/bfloat16/float32 value exactly
        "values": [enc_float(v) if isinstance(v, float) else v for v in (t.double() if t.is_floating_point() else t).flatten().tolist()],
    }


def metadata_json(sd):
    # state_dict()._metadata: OrderedDict of module prefix -> {"version": n}
    return {k: dict(v) for k, v in sd._metadata.items()}


def expected_json(sd):
    storages = {}
    for k, t in sd.items():
        storages.setdefault(t.untyped_storage().data_ptr(), []).append(k)
    return {
        "keys": list(sd.keys()),
        "tensors": {k: tensor_json(t) for k, t in sd.items()},
        "shared_storages": [ks for ks in storages.values() if len(ks) > 1],
        "metadata": metadata_json(sd),
    }


def save(name: str, sd) -> None:
    assert type(sd) is __import__("collections").OrderedDict and hasattr(sd, "_metadata"), type(sd)
    torch.save(sd, OUT / f"{name}.pt")
    torch.save(sd, OUT / f"{name}_legacy.pt", _use_new_zipfile_serialization=False)
    for f in (f"{name}.pt", f"{name}_legacy.pt"):
        back = torch.load(OUT / f, weights_only=True)
        assert list(back.keys()) == list(sd.keys()) and all(torch.equal(back[k], sd[k]) for k in sd)
        assert metadata_json(back) == metadata_json(sd)
        print(f"  {f}: {(OUT / f).stat().st_size} bytes")
    (OUT / f"{name}.json").write_text(json.dumps(expected_json(sd), indent=1) + "\n")
    print(f"  {name}.json")


def main():
    print(f"torch {torch.__version__}")
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = Net()
    sd = net.state_dict()
    # what the TypeScript test relies on, checked on torch's objects
    assert "scratch" not in sd and "tied.weight" in sd and "head.weight" in sd
    assert sd["tied.weight"].untyped_storage().data_ptr() == sd["head.weight"].untyped_storage().data_ptr()
    assert not sd["lin_t"].is_contiguous() and sd["lin_cols"].storage_offset() == 6
    assert sd["lin_t"].untyped_storage().data_ptr() == sd["lin.weight"].untyped_storage().data_ptr()
    assert sd._metadata["norm"]["version"] == 2
    save("module_state_dict", sd)

    with tempfile.TemporaryDirectory() as d:
        (pathlib.Path(d) / "prompt_pool.py").write_text(PROMPT_POOL_PY)
        sys.path.insert(0, d)
        try:
            import prompt_pool

            torch.manual_seed(17)
            save("prompt_pool_state_dict", prompt_pool.PromptPool().state_dict())
        finally:
            sys.path.remove(d)


if __name__ == "__main__":
    main()
