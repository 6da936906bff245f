"""Reference output of transformers for the demo's stand-in base (written by transformers itself).

The committed base apps/demo/base/idefics2-small-standin was saved by transformers 5
(research/standin/build_reader_base.py), with rope_theta 1e6 and hand-set weights of up to a few
hundred. Its layout differs from the 4.x one our generator writes (rope_parameters, chat_template.jinja, image-processor settings inside processor_config.json). The
demo test loads it with the TypeScript processor and model and compares with this golden.

Rerun (from the repository root):
    python goldens/make_standin_golden.py --checkpoint apps/demo/base/idefics2-small-standin \
        --out apps/demo/test/fixtures/standin_golden.json

The example is the demo's format (SPEC section 2 without prompts, --use_prompt 0): one reference
pair in evaluation order (disliked first) and a target; ids from Idefics2Processor. Pixels come
from the exact recipe of make_idefics2_goldens.py at the checkpoint's full image size (64 x 64),
fed to the model directly.
"""
import argparse
import hashlib
import json
import os
import sys

import torch
from PIL import Image
from transformers import AutoProcessor, Idefics2ForConditionalGeneration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_idefics2_goldens import pixels  # noqa: E402  (the shared pixel recipe)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    proc = AutoProcessor.from_pretrained(a.checkpoint)
    model = Idefics2ForConditionalGeneration.from_pretrained(a.checkpoint, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    tok = proc.tokenizer
    turn = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Score for this image?"}]}
    messages = [turn, {"role": "assistant", "content": [{"type": "text", "text": "-"}]},
                turn, {"role": "assistant", "content": [{"type": "text", "text": "+"}]}, turn]
    text = proc.apply_chat_template(messages, add_generation_prompt=True)
    size = model.config.vision_config.image_size
    blank = Image.new("RGB", (size, size))
    ids = proc(text=[text], images=[[blank] * 3])["input_ids"][0]
    ids = [int(i) for i in ids]
    images = [0, 1, 2]
    pv = torch.stack([pixels(i, size, size, size)[0] for i in images])[None]
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), pixel_values=pv)
    logits = out.logits[0, -1]
    plus, minus = tok.convert_tokens_to_ids("\u2581+"), tok.convert_tokens_to_ids("\u2581-")
    score = torch.softmax(torch.stack([logits[plus], logits[minus]]), 0)[0]
    with open(os.path.join(a.checkpoint, "model.safetensors"), "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    golden = {
        "about": "transformers Idefics2ForConditionalGeneration (eval, float32, eager) on the demo's stand-in base; made by goldens/make_standin_golden.py",
        "transformers_version": __import__("transformers").__version__,
        "torch_version": torch.__version__,
        "model_sha256": sha,
        "text": text,
        "input_ids": ids,
        "images": images,
        "image_size": size,
        "readout": {"positive": plus, "negative": minus},
        "logits": [float(x) for x in logits],
        "score": float(score),
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(golden, f, separators=(",", ":"))
    print(f"wrote {a.out}: {len(ids)} tokens, score {float(score):.6f}")


if __name__ == "__main__":
    main()
