"""Tiny random Idefics3 / SmolVLM checkpoints and transformers' outputs on them, for the tests of
plugins/backbone-idefics3.

Rerun (from the repository root, with goldens/requirements.txt: torch, transformers, peft, tokenizers, pillow):
    python goldens/make_idefics3_goldens.py

For each of two architectures it writes plugins/backbone-idefics3/test/fixtures/<name>/ (a
checkpoint in the Hugging Face layout, saved by transformers' save_pretrained: config.json,
model.safetensors, tokenizer.json + tokenizer_config.json, processor_config.json with the image
processor and the chat template) and goldens/<name>.json:

  idefics3-tiny  Idefics3-8B-Llama3-shaped: Llama text model (rope_theta 500000, untied lm_head,
                 GQA 4/2), BOS added by the tokenizer, scale_factor 2 (16 tokens a tile), images
                 resized to longest edge 96 and split into tiles of 32 (up to 3 x 3 + global).
  smolvlm-tiny   SmolVLM-shaped: SmolLM2-like text model (rope_theta 100000, tied embeddings,
                 GQA 3/1), no BOS from the tokenizer ("<|im_start|>" comes from SmolVLM's chat
                 template), scale_factor 4 (16 tokens a tile), tiles of 32 within longest edge 64.

The tokenizers are byte-level BPE (as Llama 3 and SmolLM2) learned with `tokenizers` on the SPEC §2
chat turns, with the Idefics3 special tokens (<fake_token_around_image>, <image>, <global-img>,
<row_i_col_j>, <end_of_utterance>). The image processor is transformers' PIL backend
(Idefics3ImageProcessorPil, LANCZOS), the reference the TypeScript processor reproduces bit for bit.

Golden contents per architecture:
  images          the input PNGs (images/<name>.png, shared) and, per image, the tiling (rows, cols)
                  and a SHA-256 of its float32 pixel values (tiles then global, CHW, little endian);
  single          one SPEC §2 sequence (2 reference pairs + target, 5 images): rendered text, ids,
                  last-position logits, and the connector output of the target's first tile;
  padded          a right-padded batch of two sequences with different numbers of tiles (padding
                  images in pixel_values): logits at each last real position, and each sequence alone;
  nosplit         the single sequence with do_image_splitting=False (one tile per image): pixel hashes,
                  ids, logits;
  peft            a LoRA adapter made by PEFT (peft/ beside the checkpoint; r 8, alpha 8, gaussian A,
                  B ~ N(0, 0.05)) and the padded batch's logits with it.

--verify DIR checks an adapter written by the TypeScript backend: DIR holds the PEFT files and
ours_logits.json ({"logits": [[...], [...]]} for the padded batch); PEFT loads it and the logits
must match to 1e-4 relative (exit 1 otherwise). Use with --arch.
"""
import argparse
import hashlib
import json
import os
import pathlib
import sys

import numpy as np
import torch
import transformers
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor, PreTrainedTokenizerFast
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIX = ROOT / "plugins/backbone-idefics3/test/fixtures"

IDEFICS3_TEMPLATE = (
    "{% for message in messages %}{{message['role'].capitalize()}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
# SmolVLM's template (processing_smolvlm.py DEFAULT_CHAT_TEMPLATE without the video branch).
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

ARCHS = {
    "idefics3-tiny": dict(
        specials=["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>"],
        bos="<|begin_of_text|>", eos="<|end_of_text|>", pad="<|finetune_right_pad_id|>", add_bos=True,
        template=IDEFICS3_TEMPLATE, tokenizer_class="PreTrainedTokenizerFast",
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=4, image_size=32),
        text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  rope_theta=500000.0, rms_norm_eps=1e-5, max_position_embeddings=8192),
        tie=False, scale_factor=2, longest_edge=96, tile=32,
    ),
    "smolvlm-tiny": dict(
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        bos="<|im_start|>", eos="<end_of_utterance>", pad="<|im_end|>", add_bos=False,
        template=SMOLVLM_TEMPLATE, tokenizer_class="GPT2Tokenizer",
        vision=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=3, patch_size=2, image_size=32),
        text=dict(hidden_size=48, intermediate_size=128, num_hidden_layers=2, num_attention_heads=3, num_key_value_heads=1,
                  rope_theta=100000.0, rms_norm_eps=1e-5, max_position_embeddings=8192),
        tie=True, scale_factor=4, longest_edge=64, tile=32,
    ),
}

IMAGE_TOKENS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"] + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]

PROMPTS = ["a red car", "a cat on a chair", "a castle at sunset", "a robot in a garden", "an old man, oil painting"]

# (width, height) of the input images: landscape, square, portrait, small, wide.
SIZES = [(40, 30), (24, 24), (24, 50), (13, 9), (64, 24), (30, 41)]


def make_image(i, w, h):
    y, x = np.mgrid[0:h, 0:w]
    r = (x * (7 + i) + y * 3 + 11 * i) % 256
    g = (y * (5 + 2 * i) + x * x // 3 + 40 * i) % 256
    b = ((x + y) * 13 + (x * y) % 17 + 90 * i) % 256
    return Image.fromarray(np.stack([r, g, b], -1).astype(np.uint8), "RGB")


def corpus():
    lines = []
    for p in PROMPTS * 4:
        for sign in ("+", "-"):
            lines.append(f"User: The prompt is '{p}' Score for this image?\nAssistant: {sign}\n")
            lines.append(f"User:Score for this image?\nAssistant: {sign}\n")
            lines.append("\n\n")
    return lines


def build_tokenizer(a):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=a["specials"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    if a["add_bos"]:
        bos = a["bos"]
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=a["bos"], eos_token=a["eos"], pad_token=a["pad"], additional_special_tokens=IMAGE_TOKENS)
    fast.chat_template = a["template"]
    for s in ("Assistant: +", "Assistant: -"):
        assert len(fast(s, add_special_tokens=False)["input_ids"]) == 3, (s, fast.tokenize(s))
    return fast


def build(name, a, out):
    tok = build_tokenizer(a)
    vocab = len(tok)
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in (("bos", a["bos"]), ("eos", a["eos"]), ("pad", a["pad"]), ("image", "<image>"))}
    torch.manual_seed(0)
    cfg = Idefics3Config(
        vision_config=dict(model_type="idefics3_vision", **a["vision"]),
        text_config=dict(model_type="llama", vocab_size=vocab, bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"],
                         tie_word_embeddings=a["tie"], hidden_act="silu", **a["text"]),
        scale_factor=a["scale_factor"], image_token_id=ids["image"], tie_word_embeddings=a["tie"], pad_token_id=ids["pad"],
    )
    model = Idefics3ForConditionalGeneration(cfg).eval()
    # The text model's init has std 0.02: raise it so the logits depend visibly on every weight.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.3 / p.shape[-1] ** 0.5 * 3)
            elif "norm" in n:
                p.uniform_(0.8, 1.2)
            else:
                p.normal_(0, 0.05)
    if a["tie"]:
        assert model.lm_head.weight.data_ptr() == model.model.text_model.embed_tokens.weight.data_ptr(), "lm_head is not tied"
    seq_len = int((a["vision"]["image_size"] // a["vision"]["patch_size"]) ** 2 / a["scale_factor"] ** 2)
    ip = Idefics3ImageProcessorPil(
        size={"longest_edge": a["longest_edge"]}, max_image_size={"longest_edge": a["tile"]}, do_image_splitting=True,
        resample=Image.Resampling.LANCZOS, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=seq_len, chat_template=a["template"])
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    proc.save_pretrained(out)
    # The tokenizer class the released checkpoints name (Idefics3-8B-Llama3: PreTrainedTokenizerFast,
    # SmolVLM: GPT2Tokenizer) instead of transformers 5's generic TokenizersBackend.
    tc = json.loads((out / "tokenizer_config.json").read_text())
    tc["tokenizer_class"] = a["tokenizer_class"]
    (out / "tokenizer_config.json").write_text(json.dumps(tc, indent=2) + "\n")
    return model, proc, seq_len


def messages(n_pairs, target_prompt, use_prompt=True):
    msgs = []
    text = lambda p: f"The prompt is '{p}' Score for this image?" if use_prompt else "Score for this image?"
    for i in range(n_pairs):
        for sign in ("-", "+"):
            msgs.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text(PROMPTS[i])}]})
            msgs.append({"role": "assistant", "content": [{"type": "text", "text": sign}]})
    msgs.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text(target_prompt)}]})
    return msgs


def floats(t):
    return [float(x) for x in t.flatten()]


def last_logits(model, inputs):
    with torch.no_grad():
        out = model(**inputs)
    last = inputs["attention_mask"].sum(1) - 1
    return torch.stack([out.logits[b, last[b]] for b in range(len(last))]), last


def per_image_hashes(proc, images):
    """Rows, cols and the SHA-256 of each image's float32 tiles (tiles then global)."""
    out = []
    for im in images:
        enc = proc.image_processor(images=[[im]], return_row_col_info=True, return_tensors="np")
        pv = enc["pixel_values"][0].astype("<f4")
        out.append({"rows": int(enc["rows"][0][0]), "cols": int(enc["cols"][0][0]), "tiles": int(pv.shape[0]), "shape": list(pv.shape[1:]), "sha256": hashlib.sha256(pv.tobytes()).hexdigest()})
    return out


def lora_config():
    from peft import LoraConfig
    return LoraConfig(r=8, lora_alpha=8, lora_dropout=0.1, init_lora_weights="gaussian",
                      target_modules=r".*(text_model.*(down_proj|gate_proj|up_proj|k_proj|q_proj|v_proj|o_proj)|modality_projection\.proj)$")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=list(ARCHS), default=None)
    ap.add_argument("--verify", default=None)
    args = ap.parse_args()
    if args.verify:
        return verify(args.arch, pathlib.Path(args.verify))
    (FIX / "images").mkdir(parents=True, exist_ok=True)
    images = []
    for i, (w, h) in enumerate(SIZES):
        im = make_image(i, w, h)
        im.save(FIX / "images" / f"image{i}.png")
        images.append(Image.open(FIX / "images" / f"image{i}.png").convert("RGB"))
    for name in ARCHS if args.arch is None else [args.arch]:
        a = ARCHS[name]
        ck = FIX / name
        model, proc, seq_len = build(name, a, ck)
        # Reload from disk, as a user would.
        model = Idefics3ForConditionalGeneration.from_pretrained(ck, dtype=torch.float32, attn_implementation="eager").eval()
        proc = Idefics3Processor.from_pretrained(ck)
        assert isinstance(proc.image_processor, Idefics3ImageProcessorPil) or True
        proc.image_processor = Idefics3ImageProcessorPil(**{k: v for k, v in proc.image_processor.to_dict().items() if k in ("size", "max_image_size", "do_image_splitting", "resample", "image_mean", "image_std", "do_resize", "do_rescale", "rescale_factor", "do_normalize", "do_pad", "do_convert_rgb")})

        def run(seqs):
            texts = [proc.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m, _ in seqs]
            enc = proc(text=texts, images=[imgs for _, imgs in seqs], padding=True, return_tensors="pt")
            return texts, enc

        # single: 2 pairs + target = 5 images.
        single_imgs = [images[k] for k in (0, 1, 2, 3, 4)]
        texts, enc = run([(messages(2, "a red car"), single_imgs)])
        logits, _ = last_logits(model, enc)
        with torch.no_grad():
            tpv = enc["pixel_values"][0]
            n_tiles = tpv.shape[0]
            vis = model.model.vision_model(pixel_values=tpv[n_tiles - 1 : n_tiles]).last_hidden_state
            conn = model.model.connector(vis)
        single = {"text": texts[0], "images": [0, 1, 2, 3, 4], "input_ids": enc["input_ids"][0].tolist(), "logits": floats(logits[0]),
                  "connector_last_tile": floats(conn[0])}

        # padded: sequence a = 1 pair + target (3 images), b = 2 pairs + target (5 images).
        seq_a = (messages(1, "a castle at sunset", use_prompt=False), [images[k] for k in (5, 2, 0)])
        seq_b = (messages(2, "a robot in a garden"), [images[k] for k in (4, 3, 1, 5, 2)])
        texts_p, enc_p = run([seq_a, seq_b])
        logits_p, last_p = last_logits(model, enc_p)
        _, enc_a = run([seq_a])
        _, enc_b = run([seq_b])
        la, _ = last_logits(model, enc_a)
        lb, _ = last_logits(model, enc_b)
        print(f"{name}: padded vs alone max |diff| in transformers {max(float((logits_p[0]-la[0]).abs().max()), float((logits_p[1]-lb[0]).abs().max())):.3g}; pixel_values {tuple(enc_p['pixel_values'].shape)}")
        padded = {"texts": texts_p, "images": [[5, 2, 0], [4, 3, 1, 5, 2]], "use_prompt": [False, True], "input_ids": [enc_a["input_ids"][0].tolist(), enc_b["input_ids"][0].tolist()],
                  "pad_token_id": proc.tokenizer.pad_token_id, "last_index": [int(x) for x in last_p], "logits": [floats(logits_p[0]), floats(logits_p[1])],
                  "logits_unpadded": [floats(la[0]), floats(lb[0])]}

        # PEFT adapter with non-zero B.
        from peft import get_peft_model
        torch.manual_seed(1)
        pm = get_peft_model(Idefics3ForConditionalGeneration.from_pretrained(ck, dtype=torch.float32, attn_implementation="eager"), lora_config())
        modules = []
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.05)
                    modules.append(n.replace("base_model.model.", "").split(".lora_B")[0])
        pm.eval()
        pm.save_pretrained(ck / "peft")
        logits_l, _ = last_logits(pm, enc_p)
        peft = {"modules": sorted(modules), "logits": [floats(logits_l[0]), floats(logits_l[1])]}

        # Without splitting (do_image_splitting=False): every image is one tile, the global image alone.
        proc_ns = Idefics3Processor.from_pretrained(ck)
        kw = {k: v for k, v in proc.image_processor.to_dict().items() if k in ("size", "max_image_size", "resample", "image_mean", "image_std")}
        proc_ns.image_processor = Idefics3ImageProcessorPil(do_image_splitting=False, **kw)
        enc_ns = proc_ns(text=[texts[0]], images=[single_imgs], return_tensors="pt")
        logits_ns, _ = last_logits(model, enc_ns)
        nosplit = {"images": per_image_hashes(proc_ns, images), "input_ids": enc_ns["input_ids"][0].tolist(), "logits": floats(logits_ns[0])}

        golden = {
            "about": f"transformers Idefics3ForConditionalGeneration (eval, float32, eager) and Idefics3Processor (PIL backend) on {name}; made by goldens/make_idefics3_goldens.py",
            "transformers_version": transformers.__version__, "torch_version": torch.__version__,
            "image_seq_len": seq_len, "image_sizes": SIZES,
            "images": per_image_hashes(proc, images),
            "single": single, "padded": padded, "peft": peft, "nosplit": nosplit,
        }
        (FIX / "goldens").mkdir(exist_ok=True)
        path = FIX / "goldens" / f"{name}.json"
        path.write_text(json.dumps(golden, separators=(",", ":")))
        print(f"wrote {path} ({path.stat().st_size} bytes); single: {len(single['input_ids'])} tokens, logits[:3] {single['logits'][:3]}; tiles {[(g['rows'], g['cols']) for g in golden['images']]}")


def verify(name, d):
    from peft import PeftModel
    ck = FIX / name
    golden = json.loads((FIX / "goldens" / f"{name}.json").read_text())
    ours = json.loads((d / "ours_logits.json").read_text())["logits"]
    proc = Idefics3Processor.from_pretrained(ck)
    proc.image_processor = Idefics3ImageProcessorPil(**{k: v for k, v in proc.image_processor.to_dict().items() if k in ("size", "max_image_size", "do_image_splitting", "resample", "image_mean", "image_std")})
    images = [Image.open(FIX / "images" / f"image{i}.png").convert("RGB") for i in range(len(SIZES))]
    g = golden["padded"]
    enc = proc(text=g["texts"], images=[[images[k] for k in l] for l in g["images"]], padding=True, return_tensors="pt")
    base = Idefics3ForConditionalGeneration.from_pretrained(ck, dtype=torch.float32, attn_implementation="eager")
    pm = PeftModel.from_pretrained(base, d).eval()
    logits, _ = last_logits(pm, enc)
    ref = torch.tensor(ours)
    err = float((logits - ref).abs().max() / ref.abs().max())
    print(f"PEFT on the adapter in {d}: max relative error vs ours {err:.3g}")
    return 0 if err < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main() or 0)
