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
import pathlib
import shutil
import sys

import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from transformers import Idefics3ForConditionalGeneration, Idefics3Processor
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIX = ROOT / "plugins/backbone-idefics3/test/fixtures"
BASE = FIX / "idefics3-tiny"
NAME = "idefics3-bias-tiny"
BIAS_STD = 0.1
SEED = 20261204


def floats(t):
    return [float(x) for x in t.flatten()]


def last_logits(model, inputs):
    with torch.no_grad():
        out = model(**inputs)
    last = inputs["attention_mask"].sum(1) - 1
    return torch.stack([out.logits[b, last[b]] for b in range(len(last))])


def main():
    base_golden = json.loads((FIX / "goldens" / "idefics3-tiny.json").read_text())
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
    from safetensors.torch import load_file
    full = load_file(str(tmp / "full" / "model.safetensors"))
    for k, v in biases.items():
        assert torch.equal(full[k], v), k
    assert sorted(k for k in full if k.startswith("model.text_model.") and k.endswith(".bias")) == sorted(biases)

    proc = Idefics3Processor.from_pretrained(BASE)
    proc.image_processor = Idefics3ImageProcessorPil(**{k: v for k, v in proc.image_processor.to_dict().items() if k in ("size", "max_image_size", "do_image_splitting", "resample", "image_mean", "image_std")})
    images = [Image.open(FIX / "images" / f"image{i}.png").convert("RGB") for i in range(len(base_golden["image_sizes"]))]
    g = base_golden["padded"]
    enc = proc(text=g["texts"], images=[[images[k] for k in l] for l in g["images"]], padding=True, return_tensors="pt")
    ids = [row[m.bool()].tolist() for row, m in zip(enc["input_ids"], enc["attention_mask"])]
    assert ids == g["input_ids"], "the processor no longer gives idefics3-tiny's golden ids"
    logits = last_logits(model, enc)
    alone = [last_logits(model, proc(text=[t], images=[[images[k] for k in l]], return_tensors="pt"))[0] for t, l in zip(g["texts"], g["images"])]
    plain = Idefics3ForConditionalGeneration.from_pretrained(BASE, dtype=torch.float32, attn_implementation="eager").eval()
    logits_plain = last_logits(plain, enc)
    change = float((logits - logits_plain).abs().max() / logits.abs().max())
    pad_diff = max(float((logits[b] - alone[b]).abs().max()) for b in range(2))
    print(f"{NAME}: {len(biases)} bias tensors; biased vs unbiased logits max rel diff {change:.3g}; padded vs alone {pad_diff:.3g}")

    golden = {
        "about": "transformers Idefics3ForConditionalGeneration (eval, float32, eager) on idefics3-tiny's weights with attention_bias and mlp_bias; made by goldens/make_idefics3_bias_goldens.py",
        "transformers_version": transformers.__version__, "torch_version": torch.__version__,
        "bias_std": BIAS_STD, "seed": SEED, "bias_tensors": sorted(biases),
        "padded": {"images": g["images"], "input_ids": g["input_ids"], "pad_token_id": g["pad_token_id"], "last_index": [int(x) for x in enc["attention_mask"].sum(1) - 1],
                   "logits": [floats(logits[0]), floats(logits[1])], "logits_unpadded": [floats(alone[0]), floats(alone[1])],
                   "biased_vs_plain_rel_diff": change},
    }
    path = FIX / "goldens" / f"{NAME}.json"
    path.write_text(json.dumps(golden, separators=(",", ":")))
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    sys.exit(main() or 0)
