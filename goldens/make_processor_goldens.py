"""Processor goldens for plugins/backbone-idefics2: what the REAL transformers Idefics2Processor makes
of a small preference example, on the tiny random checkpoint written by our checkpoint tool.

Rerun (from the repository root; needs node and goldens/requirements.txt: transformers, torch, pillow):
    python goldens/make_processor_goldens.py

It
  1. writes the tiny checkpoint with `apps/checkpoint/src/main.ts --preset tiny --seed 0` into a
     temporary directory;
  2. checks that transformers loads it: Idefics2ForConditionalGeneration.from_pretrained with NO
     missing / unexpected / mismatched keys, and Idefics2Processor.from_pretrained;
  3. builds the SPEC §2 chat for 2 reference pairs + target (liked first for pair 0, disliked first
     for pair 1) from six small deterministic images (saved as PNG fixtures), applies the chat
     template and runs processor(text=[seq, seq], images=[refs + [image0], refs + [image1]]);
  4. writes plugins/backbone-idefics2/test/fixtures/processor/:
       golden.json         texts, input_ids, attention masks, image sizes, pixel masks (base64),
                           variants (no prompt, prompt cut to 10 characters, a right-padded batch),
                           the last-position logits of the model for both target sequences;
       pixel_values.f32    float32 little-endian [6, 3, H, W]: the 5 images of sequence 0
                           (4 references + image0) then image1 of sequence 1, batch-padded;
       ref*.png, target*.png  the input images.
"""
import base64, json, pathlib, subprocess, sys, tempfile

import numpy as np
import torch
import transformers
from PIL import Image
from transformers import Idefics2ForConditionalGeneration, Idefics2Processor

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "plugins/backbone-idefics2/test/fixtures/processor"


def write_checkpoint(d: pathlib.Path) -> None:
    subprocess.run(
        ["node", "tools/scripts/run-ts.js", "apps/checkpoint/src/main.ts", "--preset", "tiny", "--out", str(d), "--seed", "0"],
        cwd=ROOT, check=True,
    )


def make_image(seed: int, width: int, height: int) -> Image.Image:
    """Smooth colour gradients plus noise, so resampling has something to average."""
    rs = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    f = rs.uniform(0.1, 0.6, size=3)
    base = np.stack([np.sin(xx * f[0] + seed), np.cos(yy * f[1]), np.sin((xx + yy) * f[2])], -1)
    arr = (base + 1) * 110 + rs.randint(0, 36, size=(height, width, 3))
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB")


# (file, seed, width, height): downscale, upscale to the shortest edge, unchanged, downscale
# keeping the aspect ratio, portrait (width raised to the shortest edge), square downscale.
IMAGES = [
    ("ref0_liked.png", 1, 40, 30),
    ("ref0_disliked.png", 2, 20, 20),
    ("ref1_liked.png", 3, 32, 32),
    ("ref1_disliked.png", 4, 64, 48),
    ("target_image0.png", 5, 24, 36),
    ("target_image1.png", 6, 50, 50),
]
EXAMPLE = {
    "references": [
        {"prompt": "a cat on a chair", "liked": "ref0_liked.png", "disliked": "ref0_disliked.png"},
        {"prompt": "an astronaut riding a horse, 4k", "liked": "ref1_liked.png", "disliked": "ref1_disliked.png"},
    ],
    "likedFirst": [True, False],
    "target": {"prompt": "a red car at night, cinematic", "image0": "target_image0.png", "image1": "target_image1.png", "label0": 1},
}


def user_text(prompt, use_prompt, max_len):
    if not use_prompt:
        return "Score for this image?"
    if max_len is not None:
        prompt = prompt[:max_len]
    return f"The prompt is '{prompt}' Score for this image?"


def chat(example, use_prompt=True, max_len=None):
    """SPEC §2 messages and the image files in sequence order (target last, as None)."""
    messages, files = [], []
    for ref, liked_first in zip(example["references"], example["likedFirst"]):
        order = [(ref["liked"], "+"), (ref["disliked"], "-")]
        if not liked_first:
            order.reverse()
        for file, answer in order:
            messages.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user_text(ref["prompt"], use_prompt, max_len)}]})
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
            files.append(file)
    messages.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user_text(example["target"]["prompt"], use_prompt, max_len)}]})
    return messages, files


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    images = {}
    for file, seed, w, h in IMAGES:
        im = make_image(seed, w, h)
        im.save(OUT / file)
        images[file] = Image.open(OUT / file).convert("RGB")

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = pathlib.Path(tmp) / "tiny"
        write_checkpoint(ckpt)
        model, info = Idefics2ForConditionalGeneration.from_pretrained(str(ckpt), output_loading_info=True)
        bad = {k: sorted(v) for k, v in info.items() if v}
        if bad:
            sys.exit(f"transformers did not load the checkpoint cleanly: {bad}")
        model.eval()
        processor = Idefics2Processor.from_pretrained(str(ckpt))
        tok = processor.tokenizer

        messages, files = chat(EXAMPLE)
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
        t = EXAMPLE["target"]
        batch_images = [[images[f] for f in files] + [images[t["image0"]]], [images[f] for f in files] + [images[t["image1"]]]]
        enc = processor(text=[text, text], images=batch_images, return_tensors="pt")
        ids = enc["input_ids"]
        assert torch.equal(ids[0], ids[1]), "the two target sequences should have identical ids"
        pv = enc["pixel_values"]  # [2, 5, 3, H, W]
        mask = enc["pixel_attention_mask"]  # [2, 5, H, W]
        pixels = torch.cat([pv[0], pv[1, 4:5]], 0).float().numpy().astype("<f4")
        pmask = torch.cat([mask[0], mask[1, 4:5]], 0).numpy().astype(np.uint8)
        (OUT / "pixel_values.f32").write_bytes(pixels.tobytes())

        with torch.no_grad():
            logits = model(**enc).logits[:, -1, :].float()

        variants = {}
        for name, use_prompt, max_len in [("no_prompt", False, None), ("max_prompt_len_10", True, 10)]:
            m, _ = chat(EXAMPLE, use_prompt, max_len)
            vt = processor.apply_chat_template(m, add_generation_prompt=True)
            ve = processor(text=[vt], images=[batch_images[0]], return_tensors="pt")
            variants[name] = {"usePrompt": use_prompt, "maxPromptLen": max_len, "text": vt, "input_ids": ve["input_ids"][0].tolist()}
        # A right-padded batch of two different lengths (full prompts, no prompts).
        padded = processor(
            text=[text, variants["no_prompt"]["text"]], images=batch_images, return_tensors="pt", padding="longest", padding_side="right"
        )

        readout = {"positive": tok.convert_tokens_to_ids("\u2581+"), "negative": tok.convert_tokens_to_ids("\u2581-")}
        golden = {
            "made_by": f"goldens/make_processor_goldens.py with transformers {transformers.__version__}, {type(processor.image_processor).__name__}",
            "checkpoint": {"preset": "tiny", "seed": 0},
            "model_loading_info": {k: sorted(v) for k, v in info.items()},
            "example": EXAMPLE,
            "image_files_in_order": files + [t["image0"]],
            "text": text,
            "input_ids": ids[0].tolist(),
            "attention_mask": enc["attention_mask"][0].tolist(),
            "image_token_id": processor.image_token_id,
            "image_seq_len": processor.image_seq_len,
            "readout": readout,
            "special_tokens": {name: tok.convert_tokens_to_ids(s) for name, s in [("image", "<image>"), ("fakeImage", "<fake_token_around_image>"), ("endOfUtterance", "<end_of_utterance>"), ("bos", "<s>"), ("eos", "</s>")]} | {"pad": tok.pad_token_id},
            "pixel_values": {
                "file": "pixel_values.f32",
                "shape": list(pixels.shape),
                "images": files + [t["image0"], t["image1"]],
                "sum": float(pixels.astype(np.float64).sum()),
                "min": float(pixels.min()),
                "max": float(pixels.max()),
            },
            "pixel_attention_mask_b64": base64.b64encode(pmask.tobytes()).decode(),
            "variants": variants,
            "padded_batch": {"input_ids": padded["input_ids"].tolist(), "attention_mask": padded["attention_mask"].tolist()},
            "last_logits": {"liked_image0": logits[0].tolist(), "disliked_image1": logits[1].tolist()},
        }
        (OUT / "golden.json").write_text(json.dumps(golden) + "\n")
        print(f"checkpoint loads cleanly: {golden['model_loading_info']}")
        print(f"wrote {OUT}: {len(golden['input_ids'])} tokens, pixel_values {list(pixels.shape)}, processor {golden['made_by']}")


if __name__ == "__main__":
    main()
