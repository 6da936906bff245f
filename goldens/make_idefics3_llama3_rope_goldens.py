"""Llama 3.1's scaled RoPE (rope_type "llama3") in transformers, for the tests of
plugins/backbone-idefics3 and packages/mllm.

Rerun (from the repository root, with goldens/requirements.txt; after make_idefics3_goldens.py,
whose idefics3-tiny checkpoint it reuses):
    python goldens/make_idefics3_llama3_rope_goldens.py

HuggingFaceM4/Idefics3-8B-Llama3 is built on Llama 3.1, whose text config has
rope_scaling {rope_type "llama3", factor 8, low_freq_factor 1, high_freq_factor 4,
original_max_position_embeddings 8192}. The scaling changes only the RoPE inverse frequencies, no
weight, so the checkpoint here is idefics3-tiny's weights with a text config that scales its RoPE
with a small original_max_position_embeddings, so that the three bands of
_compute_llama3_parameters all occur at head_dim 16 and rope_theta 500000 (wavelengths 2 pi 500000^(i/8):
6.3, 32, 167, 864, ...) and the test sequences (hundreds of tokens) reach far beyond it:
    factor 8, low_freq_factor 0.125, high_freq_factor 2, original_max_position_embeddings 32
    -> high_freq_wavelen 16, low_freq_wavelen 256: i = 0 kept, i = 1, 2 interpolated, i >= 3 divided by 8.

Writes:
  plugins/backbone-idefics3/test/fixtures/idefics3-llama3rope-tiny/config.json
      the config as transformers' save_pretrained writes it (5.x keys: rope_parameters); the test puts
      it beside idefics3-tiny's model.safetensors.
  plugins/backbone-idefics3/test/fixtures/goldens/idefics3-llama3rope-tiny.json
      rope parameters, transformers' inv_freq of the loaded model, and for idefics3-tiny's padded
      batch (same texts, images and ids as its golden): last-position logits, each sequence alone, and
      the default-RoPE logits of the same weights (how much the scaling changes them).
  packages/mllm/test/fixtures/llama3_inv_freq.json
      transformers' _compute_llama3_parameters (and the default inv_freq) for several parameter sets,
      Llama 3.1's own included, float32 values as written by torch.
"""
import json
import math
import pathlib
import shutil
import sys

import torch
import transformers
from PIL import Image
from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor, LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIX = ROOT / "plugins/backbone-idefics3/test/fixtures"
BASE = FIX / "idefics3-tiny"
NAME = "idefics3-llama3rope-tiny"
MLLM_FIX = ROOT / "packages/mllm/test/fixtures"

ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 0.125, "high_freq_factor": 2.0, "original_max_position_embeddings": 32}

# (head_dim, rope parameters) for the inverse-frequency table.
INV_FREQ_CASES = [
    (16, ROPE),
    (128, {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    (64, {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 3.3, "low_freq_factor": 1.3, "high_freq_factor": 5.7, "original_max_position_embeddings": 1000}),
    (96, {"rope_type": "llama3", "rope_theta": 273768.0, "factor": 5.0, "low_freq_factor": 0.7, "high_freq_factor": 3.1, "original_max_position_embeddings": 777}),
    (128, {"rope_type": "default", "rope_theta": 500000.0}),
]


def floats(t):
    return [float(x) for x in t.flatten()]


def inv_freq_table():
    cases = []
    for hd, params in INV_FREQ_CASES:
        cfg = LlamaConfig(hidden_size=hd * 2, num_attention_heads=2, head_dim=hd, max_position_embeddings=131072, rope_parameters=dict(params))
        fn = ROPE_INIT_FUNCTIONS[params["rope_type"]] if params["rope_type"] != "default" else None
        if fn is None:
            inv = 1.0 / (params["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
            scale = 1.0
        else:
            inv, scale = fn(cfg, "cpu")
        assert inv.dtype == torch.float32 and scale == 1.0, (inv.dtype, scale)
        wavelen = 2 * math.pi / (1.0 / (params["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd)))
        bands = None
        if params["rope_type"] == "llama3":
            o = params["original_max_position_embeddings"]
            bands = [int((wavelen < o / params["high_freq_factor"]).sum()), int(((wavelen >= o / params["high_freq_factor"]) & (wavelen <= o / params["low_freq_factor"])).sum()), int((wavelen > o / params["low_freq_factor"]).sum())]
        cases.append({"head_dim": hd, "rope": params, "bands_high_mid_low": bands, "inv_freq": floats(inv)})
    return cases


def last_logits(model, inputs):
    with torch.no_grad():
        out = model(**inputs)
    last = inputs["attention_mask"].sum(1) - 1
    return torch.stack([out.logits[b, last[b]] for b in range(len(last))])


def main():
    base_golden = json.loads((FIX / "goldens" / "idefics3-tiny.json").read_text())
    cfg = json.loads((BASE / "config.json").read_text())
    cfg["text_config"]["rope_parameters"] = dict(ROPE)
    tmp = ROOT / "tmp" / NAME
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(BASE, tmp, ignore=shutil.ignore_patterns("peft"))
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    model = Idefics3ForConditionalGeneration.from_pretrained(tmp, dtype=torch.float32, attn_implementation="eager").eval()
    rot = model.model.text_model.rotary_emb
    assert rot.rope_type == "llama3" and rot.attention_scaling == 1.0, (rot.rope_type, rot.attention_scaling)
    out = FIX / NAME
    out.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(out)
    saved = json.loads((out / "config.json").read_text())["text_config"]["rope_parameters"]
    assert saved == ROPE, saved

    proc = Idefics3Processor.from_pretrained(BASE)
    proc.image_processor = Idefics3ImageProcessorPil(**{k: v for k, v in proc.image_processor.to_dict().items() if k in ("size", "max_image_size", "do_image_splitting", "resample", "image_mean", "image_std")})
    images = [Image.open(FIX / "images" / f"image{i}.png").convert("RGB") for i in range(len(base_golden["image_sizes"]))]
    g = base_golden["padded"]
    enc = proc(text=g["texts"], images=[[images[k] for k in l] for l in g["images"]], padding=True, return_tensors="pt")
    ids = [row[m.bool()].tolist() for row, m in zip(enc["input_ids"], enc["attention_mask"])]
    assert ids == g["input_ids"], "the processor no longer gives idefics3-tiny's golden ids"
    logits = last_logits(model, enc)
    alone = []
    for t, l in zip(g["texts"], g["images"]):
        alone.append(last_logits(model, proc(text=[t], images=[[images[k] for k in l]], return_tensors="pt"))[0])
    default = Idefics3ForConditionalGeneration.from_pretrained(BASE, dtype=torch.float32, attn_implementation="eager").eval()
    logits_default = last_logits(default, enc)
    change = float((logits - logits_default).abs().max() / logits.abs().max())
    pad_diff = max(float((logits[b] - alone[b]).abs().max()) for b in range(2))
    print(f"{NAME}: lengths {[len(s) for s in ids]}; llama3 vs default RoPE logits max rel diff {change:.3g}; padded vs alone {pad_diff:.3g}")

    golden = {
        "about": f"transformers Idefics3ForConditionalGeneration (eval, float32, eager) on idefics3-tiny's weights with llama3 RoPE scaling; made by goldens/make_idefics3_llama3_rope_goldens.py",
        "transformers_version": transformers.__version__, "torch_version": torch.__version__,
        "rope_parameters": ROPE, "inv_freq": floats(rot.inv_freq),
        "padded": {"images": g["images"], "input_ids": g["input_ids"], "pad_token_id": g["pad_token_id"], "last_index": [int(x) for x in enc["attention_mask"].sum(1) - 1],
                   "logits": [floats(logits[0]), floats(logits[1])], "logits_unpadded": [floats(alone[0]), floats(alone[1])],
                   "logits_default_rope": [floats(logits_default[0]), floats(logits_default[1])], "default_vs_llama3_rel_diff": change},
    }
    path = FIX / "goldens" / f"{NAME}.json"
    path.write_text(json.dumps(golden, separators=(",", ":")))
    print(f"wrote {path} ({path.stat().st_size} bytes)")

    MLLM_FIX.mkdir(parents=True, exist_ok=True)
    table = {"about": "transformers' _compute_llama3_parameters (and the default inv_freq) in float32; made by goldens/make_idefics3_llama3_rope_goldens.py",
             "transformers_version": transformers.__version__, "torch_version": torch.__version__, "cases": inv_freq_table()}
    p2 = MLLM_FIX / "llama3_inv_freq.json"
    p2.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {p2}; bands (high, mid, low) {[c['bands_high_mid_low'] for c in table['cases']]}")


if __name__ == "__main__":
    sys.exit(main() or 0)
