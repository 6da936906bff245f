"""The tensors transformers' Idefics2ForConditionalGeneration has for the tiny preset's config.json,
untied and with tie_word_embeddings: what its state_dict lists (names, shapes, order) and what
save_pretrained writes (the tied head left out). The spec-list test
(plugins/backbone-idefics2/test/tensor-specs.spec.ts) checks the list that drives loading, export
and the checkpoint writer against it.

Rerun (from the repository root):
    npx nx run checkpoint:run -- --preset tiny --seed 0 --out tmp/idefics2-tiny
    python goldens/make_idefics2_tensor_list.py --config tmp/idefics2-tiny/config.json \
        --out plugins/backbone-idefics2/test/fixtures/goldens/idefics2_tiny_tensors.json
"""
import argparse
import json
import tempfile

import torch
import transformers
from safetensors import safe_open
from transformers import Idefics2Config, Idefics2ForConditionalGeneration


def listing(config_dict, tied):
    d = json.loads(json.dumps(config_dict))
    d["tie_word_embeddings"] = tied
    d["text_config"]["tie_word_embeddings"] = tied
    config = Idefics2Config(**d)
    torch.manual_seed(0)
    model = Idefics2ForConditionalGeneration(config).eval()
    state = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        with safe_open(f"{tmp}/model.safetensors", "pt") as f:
            saved = sorted(f.keys())
    return {"state_dict": state, "saved": saved}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.config) as f:
        config = json.load(f)
    out = {
        "about": "Idefics2ForConditionalGeneration tensors for the tiny preset; made by goldens/make_idefics2_tensor_list.py",
        "transformers_version": transformers.__version__,
        "untied": listing(config, False),
        "tied": listing(config, True),
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
