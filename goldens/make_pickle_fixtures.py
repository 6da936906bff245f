"""Writes the pickle / torch fixtures of packages/pickle with REAL pandas, numpy and torch.

Rerun (from the repository root):
    python goldens/make_pickle_fixtures.py
The main interpreter (goldens/requirements.txt: pandas 3, numpy 2, torch) writes the pandas-3, torch, plain and
malicious fixtures, then re-runs this script with a pandas-2 interpreter for the files that the
paper's release era produced (pandas 2.x + numpy 1.x pickles name `numpy.core.*`). That second
interpreter defaults to tmp/venv-pd2/bin/python under the repository root (override with
--pd2-python); create it with
    python -m venv tmp/venv-pd2
    tmp/venv-pd2/bin/pip install pandas==2.2.3 numpy==1.26.4

Every expected value is written as JSON by this script (never by the TypeScript code under test).
JSON tags for what JSON cannot say: {"$bytes": hex}, {"$bytearray": hex}, {"$tuple": [...]},
{"$set": [...]}, {"$frozenset": [...]}, {"$dict": [[k, v], ...]} (non-string keys),
{"$int": "decimal"} (beyond 2**53), {"$float": "nan" | "inf" | "-inf"}.

The malicious pickles are only DUMPED here (pickle.dumps / hand-assembled opcodes), never loaded.
"""
import argparse
import json
import math
import os
import pathlib
import pickle
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "packages/pickle/test/fixtures"


def enc(v):
    """Python value -> tagged JSON (see module docstring)."""
    import numpy as np

    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        v = int(v)
        return v if abs(v) <= 2**53 - 1 else {"$int": str(v)}
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return {"$float": "nan"}
        if math.isinf(v):
            return {"$float": "inf" if v > 0 else "-inf"}
        return v
    if isinstance(v, bytes):
        return {"$bytes": v.hex()}
    if isinstance(v, bytearray):
        return {"$bytearray": bytes(v).hex()}
    if isinstance(v, tuple):
        return {"$tuple": [enc(x) for x in v]}
    if isinstance(v, list):
        return [enc(x) for x in v]
    if isinstance(v, frozenset):
        return {"$frozenset": [enc(x) for x in sorted(v, key=repr)]}
    if isinstance(v, set):
        return {"$set": [enc(x) for x in sorted(v, key=repr)]}
    if isinstance(v, dict):
        if all(isinstance(k, str) for k in v):
            return {k: enc(x) for k, x in v.items()}
        return {"$dict": [[enc(k), enc(x)] for k, x in v.items()]}
    raise TypeError(f"cannot encode {type(v)}")


def write(name, data: bytes):
    (OUT / name).write_bytes(data)
    print(f"  {name}: {len(data)} bytes")


def write_json(name, obj):
    (OUT / name).write_text(json.dumps(obj, indent=1) + "\n")
    print(f"  {name}")


# ----------------------------------------------------------------------------------------------
# DataFrames


def fake_image(tag: int, n: int = 12) -> bytes:
    """Small deterministic bytes that look like the start of a JPEG (the real cells are JPEGs)."""
    body = bytes((tag * 37 + i * 11) % 256 for i in range(n))
    return b"\xff\xd8\xff\xe0" + body


def paper_rows():
    return {
        "user_id": [101, 202, 303],
        "reference_list": [[fake_image(1), fake_image(2)], [fake_image(3)], [fake_image(4), fake_image(5), fake_image(6)]],
        "reference_list_bad": [[fake_image(7), fake_image(8)], [fake_image(9)], [fake_image(10), fake_image(11), fake_image(12)]],
        "reference_prompt_list": [["a red fox", "a castle at dusk"], ["neon city, rain"], ["cat", "dog", "émoji ☃ ok"]],
        "image0": [fake_image(20), fake_image(21), fake_image(22)],
        "image1": [fake_image(30), fake_image(31), fake_image(32)],
        "prompt": ["a blue bird", "portrait of an astronaut", "mountains"],
        "label0": [1, 0, 1],
    }


def frame_json(df):
    return {
        "columns": [str(c) for c in df.columns],
        "length": len(df),
        "data": {str(c): [enc(v) for v in df[c].tolist()] for c in df.columns},
    }


def numeric_frame(pd, np):
    index = pd.Index([10, 20, 30], dtype="int64")
    # Two float columns from one C-ordered (3, 2) array without a copy: pandas keeps them as one
    # block whose (2, 3) values are the transposed, Fortran-ordered view.
    df = pd.DataFrame(np.arange(6.0).reshape(3, 2) / 4, columns=["m0", "m1"], index=index, copy=False)
    df.insert(0, "i", np.array([2**53 + 1, -7, 0], dtype=np.int64))
    df.insert(1, "f", np.array([0.25, float("nan"), -1.5e300], dtype=np.float64))
    df.insert(2, "b", np.array([True, False, True]))
    fortran = [b for b in df._mgr.blocks if b.values.ndim == 2 and b.values.shape[0] == 2]
    assert fortran and fortran[0].values.flags.f_contiguous and not fortran[0].values.flags.c_contiguous, "no Fortran block"
    return df


def legacy_layout_pickle(df):
    """Pickle `df` with the pandas <= 1.2 layout: BlockManager built by copyreg.__newobj__ and given the
    (axes, values, items, {"0.14.1": {...}}) state tuple. Produced with real pandas objects; the
    caller checks that real pandas reads it back."""
    import copyreg
    import io
    from pandas.core.internals.managers import BlockManager

    def reduce_block_manager(mgr):
        axes = list(mgr.axes)
        extra = {"0.14.1": {"axes": axes, "blocks": [{"values": b.values, "mgr_locs": b.mgr_locs.indexer} for b in mgr.blocks]}}
        state = (axes, [b.values for b in mgr.blocks], [mgr.items[b.mgr_locs.indexer] for b in mgr.blocks], extra)
        return (copyreg.__newobj__, (BlockManager,), state)

    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=2)
    # A per-pickler dispatch table (exact-type lookup, before the class's own __reduce__).
    pickler.dispatch_table = {**copyreg.dispatch_table, BlockManager: reduce_block_manager}
    pickler.dump(df)
    return buf.getvalue()


def make_pandas(tag: str):
    import numpy as np
    import pandas as pd

    print(f"pandas {pd.__version__}, numpy {np.__version__} -> {tag}")
    paper = pd.DataFrame(paper_rows())
    if tag == "pd2_np1":
        assert paper["prompt"].dtype == object
        write(f"paper_{tag}_p4.pkl", pickle.dumps(paper, protocol=4))
        write(f"paper_{tag}_p5.pkl", pickle.dumps(paper, protocol=5))
        paper.to_pickle(OUT / f"paper_{tag}_to_pickle.pkl")
        print(f"  paper_{tag}_to_pickle.pkl: {(OUT / f'paper_{tag}_to_pickle.pkl').stat().st_size} bytes")
        legacy = legacy_layout_pickle(paper)
        assert pickle.loads(legacy).equals(paper), "pandas cannot read the legacy-layout pickle back"
        write(f"paper_{tag}_legacy_layout_p2.pkl", legacy)
        write_json("paper.json", frame_json(paper))
        num = numeric_frame(pd, np)
        write(f"numeric_{tag}_p5.pkl", pickle.dumps(num, protocol=5))
        write(f"numeric_{tag}_p2.pkl", pickle.dumps(num, protocol=2))
        write_json("numeric.json", frame_json(num))
        cat = pd.DataFrame({"c": pd.Categorical(["a", "b", "a"])})
        write(f"categorical_{tag}_p5.pkl", pickle.dumps(cat, protocol=5))
    else:
        # pandas 3: `prompt` and the column labels are Arrow-backed strings by default.
        assert str(paper["prompt"].dtype) == "str", paper["prompt"].dtype
        write(f"paper_{tag}_p5.pkl", pickle.dumps(paper, protocol=5))
        paper.to_pickle(OUT / f"paper_{tag}_to_pickle.pkl")
        print(f"  paper_{tag}_to_pickle.pkl: {(OUT / f'paper_{tag}_to_pickle.pkl').stat().st_size} bytes")
        num = numeric_frame(pd, np)
        write(f"numeric_{tag}_p4.pkl", pickle.dumps(num, protocol=4))
        ext = pd.DataFrame(
            {
                "ni": pd.array([1, None, -3], dtype="Int64"),
                "nf": pd.array([0.5, None, 2.0], dtype="Float64"),
                "nb": pd.array([True, None, False], dtype="boolean"),
                "sp": pd.array(["x", None, "zz"], dtype=pd.StringDtype("python")),
                "sa": pd.array(["p", "q", None], dtype=pd.StringDtype("pyarrow")),
            }
        )
        write(f"extension_{tag}_p5.pkl", pickle.dumps(ext, protocol=5))
        # pandas' missing values (pd.NA / NaN) are all None in the TypeScript reader.
        exp = {"columns": list(ext.columns), "length": len(ext)}
        exp["data"] = {c: [None if (v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))) else enc(v) for v in ext[c].tolist()] for c in ext.columns}
        write_json("extension.json", exp)


# ----------------------------------------------------------------------------------------------
# torch


PROMPT_POOL_PY = '''import torch
import torch.nn as nn


class PromptPool(nn.Module):
    """Small stand-in for the paper's prompt_pool.PromptPool (length x 4096 in the paper)."""

    def __init__(self, length=3, dim=8):
        super().__init__()
        self.prompt = nn.Parameter(torch.rand(length, dim))
'''


def tensor_json(t):
    import torch

    return {
        "dtype": str(t.dtype).replace("torch.", ""),
        "shape": list(t.shape),
        "requires_grad": bool(t.requires_grad),
        # float64 holds every float16/bfloat16/float32/float64 value exactly
        "values": [enc(v) for v in (t.detach().double() if t.is_floating_point() else t.detach()).flatten().tolist()],
    }


def make_torch():
    import torch

    print(f"torch {torch.__version__}")
    g = torch.Generator().manual_seed(0)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    view = base[1:, ::2].t()  # storage offset 6, strides (2, 6): neither contiguous nor offset 0
    assert not view.is_contiguous() and view.storage_offset() == 6
    state = {
        "w32": torch.randn(2, 3, generator=g),
        "h16": (torch.randn(5, generator=g) * 100).half(),
        "bf16": (torch.randn(2, 2, generator=g) * 1e-3).bfloat16(),
        "f64": torch.tensor([1.0 / 3.0, -2.5e-300], dtype=torch.float64),
        "i64": torch.tensor([2**40 + 1, -3], dtype=torch.int64),
        "scalar": torch.tensor(3.5),
        "base": base,
        "view": view,
        "nested": {"inner": torch.tensor([[1, 2], [3, 4]], dtype=torch.int32), "list": [torch.ones(2, dtype=torch.float16)]},
    }
    torch.save(state, OUT / "state_dict.pt")
    torch.save(state, OUT / "state_dict_legacy.pt", _use_new_zipfile_serialization=False)
    for n in ("state_dict.pt", "state_dict_legacy.pt"):
        print(f"  {n}: {(OUT / n).stat().st_size} bytes")
    flat = {k: tensor_json(v) for k, v in state.items() if torch.is_tensor(v)}
    flat["nested.inner"] = tensor_json(state["nested"]["inner"])
    flat["nested.list.0"] = tensor_json(state["nested"]["list"][0])
    write_json("state_dict.json", {"tensors": flat, "view": {"storage_offset": view.storage_offset(), "stride": list(view.stride())}})

    with tempfile.TemporaryDirectory() as d:
        (pathlib.Path(d) / "prompt_pool.py").write_text(PROMPT_POOL_PY)
        sys.path.insert(0, d)
        try:
            import prompt_pool

            torch.manual_seed(42)
            pool = prompt_pool.PromptPool()
            assert type(pool).__module__ + "." + type(pool).__qualname__ == "prompt_pool.PromptPool"
            torch.save(pool, OUT / "prompt_pool.pt")
            torch.save(pool, OUT / "prompt_pool_legacy.pt", _use_new_zipfile_serialization=False)
            for n in ("prompt_pool.pt", "prompt_pool_legacy.pt"):
                print(f"  {n}: {(OUT / n).stat().st_size} bytes")
            write_json(
                "prompt_pool.json",
                {"class": "prompt_pool.PromptPool", "training": pool.training, "parameters": {"prompt": tensor_json(pool.prompt)}},
            )
        finally:
            sys.path.remove(d)


# ----------------------------------------------------------------------------------------------
# plain values through every protocol, and the malicious pickles


def plain_value():
    return {
        "ints": [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31 - 1, 2**31, 2**53 - 1, 2**53 + 1, -(2**63), 2**64 + 5, 10**30],
        "floats": [0.0, -0.0, 1.5, -2.25e-300, float("inf"), float("-inf"), float("nan")],
        "str": ["", "ascii", "é ☃ \U0001F600", "x" * 300, "line\nbreak \\ back 'q' \"dq\""],
        "bytes": [b"", b"\x00\x01\xff", bytes(range(256)) * 2],
        "bytearray": bytearray(b"\x10\x20"),
        "tuple": (1, (2, 3), ()),
        "set": {1, 2, 3},
        "frozenset": frozenset({"a", "b"}),
        "bools": [True, False, None],
        "int_keys": {1: "one", 2: "two"},
        "nested": [[], {}, [[1]]],
    }


def make_out_of_band():
    """Protocol 5 with buffer_callback: the pickle only refers to its buffers (NEXT_BUFFER)."""
    import numpy as np

    arr = np.arange(6, dtype=np.float32).reshape(2, 3) / 8
    arr.flags.writeable = False  # a read-only buffer adds READONLY_BUFFER
    value = {"arr": arr, "ba": pickle.PickleBuffer(bytearray(b"xyz"))}
    buffers = []
    write("oob_p5.pkl", pickle.dumps(value, protocol=5, buffer_callback=buffers.append))
    raws = [bytes(b.raw()) for b in buffers]
    write("oob_p5.buffers.bin", b"".join(raws))
    write_json("oob_p5.json", {"buffer_lengths": [len(r) for r in raws], "arr": {"shape": list(arr.shape), "values": arr.flatten().tolist()}, "ba": b"xyz".hex()})


def make_plain():
    v = plain_value()
    shared = [1, 2]
    v["shared"] = [shared, shared]  # exercises memo GET/PUT
    for p in range(0, 6):
        write(f"plain_p{p}.pkl", pickle.dumps(v, protocol=p))
    write_json("plain.json", enc(v))


class _RunsOsSystem:
    """Pickling this object records a call to os.system; nothing here ever calls it."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/userpref-pickle-pwned",))


RECORD_PY = '''class Record:
    """A plain class that the TypeScript reader does not know: read as an inert record."""

    def __init__(self):
        self.name = "pool"
        self.sizes = [10, 4096]
'''


def make_inert_records():
    """Instances of an unknown class through copyreg._reconstructor (protocols 0/1) and NEWOBJ (2+)."""
    with tempfile.TemporaryDirectory() as d:
        (pathlib.Path(d) / "legacy_record.py").write_text(RECORD_PY)
        sys.path.insert(0, d)
        try:
            import legacy_record

            r = legacy_record.Record()
            for p in (0, 1, 2, 4):
                write(f"inert_record_p{p}.pkl", pickle.dumps(r, protocol=p))
            write_json("inert_record.json", {"class": "legacy_record.Record", "state": enc(r.__dict__)})
        finally:
            sys.path.remove(d)


def make_malicious():
    # Hand-assembled protocol 4: STACK_GLOBAL os.system, ('touch ...',), REDUCE.
    cmd = b"touch /tmp/userpref-pickle-pwned"
    hand = (
        b"\x80\x04"
        + b"\x8c\x02os" + b"\x8c\x06system" + b"\x93"
        + b"\x8c" + bytes([len(cmd)]) + cmd + b"\x85"
        + b"R" + b"."
    )
    write("malicious_os_system.pkl", hand)
    # What pickle.dumps makes of a __reduce__ that returns os.system (module posix on Linux), protocol 2.
    write("malicious_reduce_p2.pkl", pickle.dumps(_RunsOsSystem(), protocol=2))
    # A module-like object (inert class) whose state smuggles a call: must still be refused.
    smuggle = (
        b"\x80\x02"
        + b"cprompt_pool\nPromptPool\n" + b")" + b"\x81"
        + b"}" + b"X\x04\x00\x00\x00evil"
        + b"cos\nsystem\n" + b"X" + len(cmd).to_bytes(4, "little") + cmd + b"\x85" + b"R"
        + b"s" + b"b" + b"."
    )
    write("malicious_inert_smuggle.pkl", smuggle)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pandas-only", choices=["pd2_np1"], help="internal: run only the pandas-2 part")
    ap.add_argument("--pd2-python", default="tmp/venv-pd2/bin/python")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.pandas_only:
        make_pandas(args.pandas_only)
        return
    import pandas as pd

    if not pd.__version__.startswith("3."):
        sys.exit(f"run this with the pandas-3 interpreter (goldens/requirements.txt), not pandas {pd.__version__}")
    make_pandas("pd3_np2")
    make_torch()
    make_plain()
    make_out_of_band()
    make_inert_records()
    make_malicious()
    if not os.path.exists(args.pd2_python):
        sys.exit(f"{args.pd2_python} missing: create it as the header of this script says")
    subprocess.run([args.pd2_python, __file__, "--pandas-only", "pd2_np1"], check=True)


if __name__ == "__main__":
    main()
