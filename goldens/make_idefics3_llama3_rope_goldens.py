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
import shutil
import sys

import torch
import transformers
from transformers import Idefics3ForConditionalGeneration, LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from idefics3_padded import BASE, FIX, ROOT, PaddedBatch, floats, last_logits
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


def main():
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

    batch = PaddedBatch()
    padded, logits_default, change, pad_diff = batch.measure(model)
    print(f"{NAME}: lengths {[len(s) for s in batch.ids]}; llama3 vs default RoPE logits max rel diff {change:.3g}; padded vs alone {pad_diff:.3g}")

    golden = {
        "about": f"transformers Idefics3ForConditionalGeneration (eval, float32, eager) on idefics3-tiny's weights with llama3 RoPE scaling; made by goldens/make_idefics3_llama3_rope_goldens.py",
        "transformers_version": transformers.__version__, "torch_version": torch.__version__,
        "rope_parameters": ROPE, "inv_freq": floats(rot.inv_freq),
        "padded": {**padded, "logits_default_rope": [floats(logits_default[0]), floats(logits_default[1])], "default_vs_llama3_rel_diff": change},
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
