"""PEFT LoRA goldens for the tfjs backbone: an adapter made by PEFT and the logits it gives, and a
check that an adapter written by the tfjs code loads in PEFT and reproduces the tfjs logits.

Make the goldens (from the repository root; the checkpoint as in make_idefics2_goldens.py):
    npx nx run checkpoint:run -- --preset tiny --seed 0 --out tmp/idefics2-tiny
    python goldens/make_peft_goldens.py --checkpoint tmp/idefics2-tiny \
        --out plugins/backbone-idefics2/test/fixtures/goldens
  writes peft_tiny/ (adapter_config.json + adapter_model.safetensors, saved by PEFT's
  save_pretrained) and peft_tiny.json (the targeted module names, PEFT's logits for the padded
  batch of idefics2_tiny.json, and the same logits after merge_and_unload).

Verify an adapter saved by the tfjs backbone (test/lora.spec.ts writes one plus the logits it
computed when USERPREF_PEFT_VERIFY_DIR is set, and runs this itself when USERPREF_PEFT_PYTHON names
a Python with transformers + peft):
    python goldens/make_peft_goldens.py --checkpoint tmp/idefics2-tiny \
        --verify DIR_WITH_ADAPTER --golden plugins/backbone-idefics2/test/fixtures/goldens/idefics2_tiny.json
  DIR holds adapter_config.json, adapter_model.safetensors and ours_logits.json ({"logits": [[...], [...]]});
  loads the adapter with PeftModel.from_pretrained and with transformers' load_adapter, runs the
  padded batch and exits 1 unless both match ours to 1e-4 relative.

The paper's LoRA (SPEC §3): r=8, lora_alpha=8, lora_dropout=0.1, init_lora_weights="gaussian",
target_modules = the regex below. B is zero after init, so it is set to N(0, 0.05) to make the
adapter change the logits.
"""
import argparse
import json
import os
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import Idefics2ForConditionalGeneration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_idefics2_goldens import image_size, pixels  # noqa: E402

TARGET = ".*(text_model|modality_projection|perceiver_resampler).*(down_proj|gate_proj|up_proj|k_proj|q_proj|v_proj|o_proj).*$"


def base_model(ckpt):
    m = Idefics2ForConditionalGeneration.from_pretrained(ckpt, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    return m


def padded_logits(model, golden):
    g = golden["padded"]
    size = golden["image_size"]
    seqs = g["input_ids"]
    B = len(seqs)
    T = max(len(s) for s in seqs)
    ids = torch.full((B, T), g["pad_token_id"], dtype=torch.long)
    am = torch.zeros(B, T, dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = torch.tensor(s)
        am[b, : len(s)] = 1
    n_max = max(len(l) for l in g["images"])
    pv = torch.zeros(B, n_max, 3, size, size)
    pm = torch.zeros(B, n_max, size, size, dtype=torch.long)
    for b, l in enumerate(g["images"]):
        for j, img in enumerate(l):
            pv[b, j], pm[b, j] = pixels(img, *image_size(img), size)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=am, pixel_values=pv, pixel_attention_mask=pm)
    last = am.sum(1) - 1
    return [[float(x) for x in out.logits[b, last[b]]] for b in range(B)]


def rel(a, b):
    a = torch.tensor(a)
    b = torch.tensor(b)
    return float((a - b).abs().max() / b.abs().max())


def make(args):
    golden = json.load(open(os.path.join(args.out, "idefics2_tiny.json")))
    torch.manual_seed(0)
    cfg = LoraConfig(r=8, lora_alpha=8, lora_dropout=0.1, init_lora_weights="gaussian", target_modules=TARGET, bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(base_model(args.checkpoint), cfg)
    modules = []
    with torch.no_grad():
        for name, mod in model.named_modules():
            if hasattr(mod, "lora_B") and "default" in getattr(mod, "lora_B", {}):
                mod.lora_B["default"].weight.normal_(0.0, 0.05)
                modules.append(name[len("base_model.model."):])
    model.eval()
    logits = padded_logits(model, golden)
    adapter_dir = os.path.join(args.out, "peft_tiny")
    model.save_pretrained(adapter_dir)
    readme = os.path.join(adapter_dir, "README.md")  # PEFT's generated model card: not needed
    if os.path.exists(readme):
        os.remove(readme)
    merged = model.merge_and_unload()
    logits_merged = padded_logits(merged, golden)
    out = {
        "about": "PEFT LoRA on the tiny checkpoint; made by goldens/make_peft_goldens.py",
        "peft_version": __import__("peft").__version__,
        "target_modules": TARGET,
        "modules": sorted(modules),
        "logits": logits,
        "logits_merged": logits_merged,
    }
    with open(os.path.join(args.out, "peft_tiny.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"{len(modules)} LoRA modules; adapter in {adapter_dir}; merged vs unmerged rel diff {rel(logits_merged[0], logits[0]):.3g}")


def verify(args):
    golden = json.load(open(args.golden))
    ours = json.load(open(os.path.join(args.verify, "ours_logits.json")))["logits"]
    worst = 0.0
    peft_model = PeftModel.from_pretrained(base_model(args.checkpoint), args.verify)
    peft_model.eval()
    theirs = padded_logits(peft_model, golden)
    for b in range(len(ours)):
        worst = max(worst, rel(ours[b], theirs[b]))
    print(f"PeftModel.from_pretrained: max rel diff vs ours {worst:.3g}")
    tm = base_model(args.checkpoint)
    tm.load_adapter(args.verify)
    tm.eval()
    theirs2 = padded_logits(tm, golden)
    worst2 = max(rel(ours[b], theirs2[b]) for b in range(len(ours)))
    print(f"transformers load_adapter: max rel diff vs ours {worst2:.3g}")
    ok = worst < 1e-4 and worst2 < 1e-4
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", help="goldens directory (holds idefics2_tiny.json); writes peft_tiny/ and peft_tiny.json")
    ap.add_argument("--verify", help="directory with an adapter saved by the tfjs backbone and ours_logits.json")
    ap.add_argument("--golden", help="idefics2_tiny.json (with --verify)")
    args = ap.parse_args()
    if args.verify:
        verify(args)
    elif args.out:
        make(args)
    else:
        ap.error("give --out or --verify")


if __name__ == "__main__":
    main()
