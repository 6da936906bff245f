"""Llama's attention_bias and mlp_bias in transformers, for the tests of plugins/backbone-idefics3.

Rerun (from the repository root, with goldens/requirements.txt; after make_idefics3_goldens.py,
whose idefics3-tiny checkpoint it reuses):
    python goldens/make_idefics3_bias_goldens.py

A Llama text config may set attention_bias (q/k/v/o_proj carry a bias) and mlp_bias (gate/up/
down_proj carry one). Transformers' LlamaAttention and LlamaMLP then build nn.Linear(..., bias=True).
The checkpoint here is idefics3-tiny's weights plus those biases, drawn N(0, 0.1^2) with a fixed
seed (transformers would initialise them to zero, which would test nothing), under a config with
both flags set.

Writes:
  plugins/backbone-idefics3/test/fixtures/idefics3-bias-tiny/config.json
      the config as transformers' save_pretrained writes it;
  plugins/backbone-idefics3/test/fixtures/idefics3-bias-tiny/biases.safetensors
      only the text model's projection biases (the test shards them beside idefics3-tiny's
      model.safetensors with a model.safetensors.index.json, as a large checkpoint is stored);
  plugins/backbone-idefics3/test/fixtures/goldens/idefics3-bias-tiny.json
      for idefics3-tiny's padded batch (same texts, images and ids as its golden): last-position
      logits, each sequence alone, and how much the biases change the logits.
"""
import json
import shutil
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import Idefics3ForConditionalGeneration

from idefics3_padded import BASE, FIX, ROOT, PaddedBatch, floats, last_logits

NAME = "idefics3-bias-tiny"
BIAS_STD = 0.1
SEED = 20261204


def main():
    cfg = json.loads((BASE / "config.json").read_text())
    cfg["text_config"]["attention_bias"] = True
    cfg["text_config"]["mlp_bias"] = True
    tmp = ROOT / "tmp" / NAME
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(BASE, tmp, ignore=shutil.ignore_patterns("peft"))
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    model = Idefics3ForConditionalGeneration.from_pretrained(tmp, dtype=torch.float32, attn_implementation="eager").eval()
    gen = torch.Generator().manual_seed(SEED)
    biases = {}
    text = model.model.text_model
    for i, layer in enumerate(text.layers):
        mods = {"self_attn": ["q_proj", "k_proj", "v_proj", "o_proj"], "mlp": ["gate_proj", "up_proj", "down_proj"]}
        for block, names in mods.items():
            for n in names:
                lin = getattr(getattr(layer, block), n)
                assert lin.bias is not None, f"layer {i} {block}.{n} has no bias under attention_bias/mlp_bias"
                with torch.no_grad():
                    lin.bias.copy_(torch.randn(lin.bias.shape, generator=gen) * BIAS_STD)
                biases[f"model.text_model.layers.{i}.{block}.{n}.bias"] = lin.bias.detach().clone().contiguous()
    out = FIX / NAME
    out.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(out)
    saved = json.loads((out / "config.json").read_text())["text_config"]
    assert saved["attention_bias"] is True and saved["mlp_bias"] is True, saved
    save_file(biases, str(out / "biases.safetensors"), metadata={"format": "pt"})
    # The saved model, read back whole, must hold exactly these biases (the names are transformers').
    model.save_pretrained(tmp / "full")
    full = load_file(str(tmp / "full" / "model.safetensors"))
    for k, v in biases.items():
        assert torch.equal(full[k], v), k
    assert sorted(k for k in full if k.startswith("model.text_model.") and k.endswith(".bias")) == sorted(biases)

    padded, _, change, pad_diff = PaddedBatch().measure(model)
    print(f"{NAME}: {len(biases)} bias tensors; biased vs unbiased logits max rel diff {change:.3g}; padded vs alone {pad_diff:.3g}")

    golden = {
        "about": "transformers Idefics3ForConditionalGeneration (eval, float32, eager) on idefics3-tiny's weights with attention_bias and mlp_bias; made by goldens/make_idefics3_bias_goldens.py",
        "transformers_version": transformers.__version__, "torch_version": torch.__version__,
        "bias_std": BIAS_STD, "seed": SEED, "bias_tensors": sorted(biases),
        "padded": {**padded, "biased_vs_plain_rel_diff": change},
    }
    path = FIX / "goldens" / f"{NAME}.json"
    path.write_text(json.dumps(golden, separators=(",", ":")))
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    sys.exit(main() or 0)
