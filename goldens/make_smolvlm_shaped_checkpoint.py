"""A random checkpoint with the exact shapes of a SmolVLM model, for timing and memory measurements
of plugins/backbone-idefics3 on this CPU (the real weights cannot be downloaded here; compute and
memory depend on the shapes only).

    python goldens/make_smolvlm_shaped_checkpoint.py --size 256M --out tmp/smolvlm-256m-shaped

Sizes (HuggingFaceTB/SmolVLM-256M-Instruct, -500M-Instruct, SmolVLM-Instruct): SigLIP base patch 16 at 512
(256M, 500M) or SigLIP so400m patch 14 at 384 (2.2B); pixel shuffle 4 (64 tokens a 512 tile) or 3 (81
tokens a 384 tile); SmolLM2-135M / 360M / 1.7B text models, vocabulary 49280 / 49280 / 49155, untied
LM head. The tokenizer, chat template and image processor are the smolvlm-tiny fixture's (the
<image> id is set to the tokenizer's), with SmolVLM's image sizes (longest edge 4 tiles, tile = image_size).
Prints the parameter count transformers gives the config.
"""
import argparse
import json
import pathlib
import shutil

import torch
from transformers import Idefics3Config, Idefics3ForConditionalGeneration

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ROOT / "plugins/backbone-idefics3/test/fixtures/smolvlm-tiny"

SIGLIP_BASE_512 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, patch_size=16, image_size=512)
SIGLIP_SO400M_384 = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16, patch_size=14, image_size=384)
SIZES = {
    "256M": dict(vision=SIGLIP_BASE_512, scale=4, text=dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, vocab_size=49280, rope_theta=100000.0)),
    "500M": dict(vision=SIGLIP_BASE_512, scale=4, text=dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15, num_key_value_heads=5, vocab_size=49280, rope_theta=100000.0)),
    "2.2B": dict(vision=SIGLIP_SO400M_384, scale=3, text=dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32, num_key_value_heads=32, vocab_size=49155, rope_theta=273768.0)),
}


def config(size, image_token_id):
    s = SIZES[size]
    return Idefics3Config(
        vision_config=dict(model_type="idefics3_vision", **s["vision"]),
        text_config=dict(model_type="llama", rms_norm_eps=1e-5, max_position_embeddings=16384, tie_word_embeddings=False, **s["text"]),
        scale_factor=s["scale"], image_token_id=image_token_id, tie_word_embeddings=False,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=list(SIZES), required=True)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    tiny_cfg = json.loads((TINY / "config.json").read_text())
    cfg = config(args.size, tiny_cfg["image_token_id"])
    with torch.device("meta"):
        n = sum(p.numel() for p in Idefics3ForConditionalGeneration(cfg).parameters())
    print(f"SmolVLM-{args.size}-shaped: {n} parameters ({n * 4 / 1e9:.2f} GB in float32)")
    if not args.out:
        return
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(cfg).eval()
    model.save_pretrained(out)
    for f in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]:
        shutil.copy(TINY / f, out / f)
    proc = json.loads((TINY / "processor_config.json").read_text())
    tile = SIZES[args.size]["vision"]["image_size"]
    proc["image_processor"]["max_image_size"] = {"longest_edge": tile}
    proc["image_processor"]["size"] = {"longest_edge": 4 * tile}
    proc["image_seq_len"] = (tile // SIZES[args.size]["vision"]["patch_size"]) ** 2 // SIZES[args.size]["scale"] ** 2
    (out / "processor_config.json").write_text(json.dumps(proc, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
