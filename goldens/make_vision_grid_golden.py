"""Full-model golden on a 19 x 19 position grid (issue 17, item 5): transformers' logits where the
vision position ids of torch's float32 arithmetic matter (numPatchesPerSide = 19: patch 12 of a full
row lands in bucket 11).

Rerun (from the repository root):
    node tools/scripts/run-ts.js goldens/write_grid_checkpoint.ts tmp/idefics2-grid19 19
    python goldens/make_vision_grid_golden.py --checkpoint tmp/idefics2-grid19 \
        --out plugins/backbone-idefics2/test/fixtures/goldens/idefics2_grid19.json

The checkpoint is the tiny preset (seed 0) with vision_config.image_size = 76 (patch 4 -> a grid of
19), written by the workspace's generator; the test rebuilds it and checks `fingerprint` first.
One sequence with one reference pair and the target: three images of 76 x 76 (19 x 19 patches),
52 x 76 (13 x 19) and 76 x 60 (19 x 15), pixels from make_idefics2_goldens' recipe, padded to 76.
Recorded: the vision position ids transformers used (captured at the position embedding), the
vision output of image 0, and the last-position logits (eval, float32, eager attention).
"""
import argparse
import json
import os
import sys

import torch
from safetensors import safe_open
from transformers import AutoTokenizer, Idefics2ForConditionalGeneration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_idefics2_goldens import build_ids, floats, pixels  # noqa: E402

SIZES = [(76, 76), (52, 76), (76, 60)]
POS = "model.vision_model.embeddings.position_embedding.weight"


def fingerprint(ckpt):
    out = {}
    with safe_open(os.path.join(ckpt, "model.safetensors"), "pt") as f:
        for name in [POS, "model.text_model.layers.0.self_attn.q_proj.weight", "lm_head.weight"]:
            t = f.get_tensor(name).float().flatten()
            out[name] = {"sum": float(t.double().sum()), "abs_sum": float(t.double().abs().sum()), "first": [float(x) for x in t[:4]]}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    model = Idefics2ForConditionalGeneration.from_pretrained(args.checkpoint, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    tok = AutoTokenizer.from_pretrained(args.checkpoint)
    cfg = model.config
    size = cfg.vision_config.image_size
    per_side = size // cfg.vision_config.patch_size
    assert per_side == 19 and size == 76, (per_side, size)
    words = ["cat", "photo", "portrait", "castle", "forest", "robot", "painting", "sunset"]
    ids = build_ids(tok, 1, cfg.perceiver_config.resampler_n_latents, words)
    images = [0, 1, 2]
    pv = torch.zeros(1, len(images), 3, size, size)
    pm = torch.zeros(1, len(images), size, size, dtype=torch.long)
    for j, img in enumerate(images):
        pv[0, j], pm[0, j] = pixels(img, *SIZES[img], size)

    captured = {}
    emb = model.model.vision_model.embeddings
    vis_out = {}

    def keep_ids(mod, inp, out):  # a forward hook must return None, or it replaces the output
        captured["position_ids"] = inp[0].clone()

    def keep_vision(mod, inp, out):
        vis_out["hidden"] = out.last_hidden_state.clone()

    hook = emb.position_embedding.register_forward_hook(keep_ids)
    vhook = model.model.vision_model.register_forward_hook(keep_vision)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), pixel_values=pv, pixel_attention_mask=pm)
    hook.remove()
    vhook.remove()
    pos = captured["position_ids"]
    vis = vis_out["hidden"]
    row0 = pos[0].reshape(per_side, per_side)[0].tolist()
    print(f"image 0 first-row position ids: {row0}")
    assert row0[12] == 11, "expected torch's arange to put patch 12 in bucket 11 on a grid of 19"
    golden = {
        "about": "transformers Idefics2ForConditionalGeneration (eval, float32, eager) on the tiny checkpoint with a 19 x 19 position grid; made by goldens/make_vision_grid_golden.py",
        "transformers_version": __import__("transformers").__version__,
        "torch_version": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "checkpoint": {"preset": "tiny", "seed": 0, "vision_image_size": size, "num_patches_per_side": per_side},
        "fingerprint": fingerprint(args.checkpoint),
        "image_sizes": SIZES,
        "image_size": size,
        "input_ids": ids,
        "images": images,
        "position_ids": [[int(x) for x in p] for p in pos],
        "vision_image0_first64": floats(vis[0].flatten()[:64]),
        "vision_abs_sum": [float(vis[j].double().abs().sum()) for j in range(len(images))],
        "logits": floats(out.logits[0, -1]),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(golden, f, separators=(",", ":"))
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
