"""Reference outputs of transformers' Idefics2ForConditionalGeneration for the tfjs backbone tests.

Rerun (from the repository root):
    npx nx run checkpoint:run -- --preset tiny --seed 0 --out tmp/idefics2-tiny
    python goldens/make_idefics2_goldens.py --checkpoint tmp/idefics2-tiny \
        --out plugins/backbone-idefics2/test/fixtures/goldens/idefics2_tiny.json

The tests rebuild the same checkpoint with writeIdefics2Checkpoint({preset: 'tiny', seed: 0}) and
check the `fingerprint` below first, so a changed generator is reported as such, not as a model bug.

Pixels come from an exact recipe (multiples of 1/16, see `pixels`), rebuilt bit for bit in the
test; token ids are stored. The model runs in eval mode, float32, eager attention.

Cases:
  single   one sequence: 8 reference pairs + target = 17 images of mixed sizes (28..32 px, padded to
           32x32 with a pixel mask); last-position logits, vision / connector output of image 0 and 1,
           last-layer attention of the last query.
  padded   a right-padded batch of 2 sequences of different lengths (3 and 5 images); logits at each
           last real position, and each sequence alone (unpadded).
  buckets  the position-id buckets of the variable-resolution vision embeddings for a grid of
           numPatchesPerSide = 70 (idefics2-8b) and 8 (tiny), for every real patch count.
"""
import argparse
import json
import os

import torch
from safetensors import safe_open
from transformers import AutoTokenizer, Idefics2ForConditionalGeneration
from transformers.models.idefics2.configuration_idefics2 import Idefics2VisionConfig
from transformers.models.idefics2.modeling_idefics2 import Idefics2VisionEmbeddings


def pixels(img, h, w, size):
    """Image `img` of h x w real pixels, zero-padded to size x size; values k/16 - 1 in [-1, 1]."""
    px = torch.zeros(3, size, size, dtype=torch.float32)
    mask = torch.zeros(size, size, dtype=torch.long)
    for c in range(3):
        for y in range(h):
            for x in range(w):
                v = (img * 7 + c * 11 + y * y * 3 + x * (img + 1) * 5 + x * y) % 33
                px[c, y, x] = v / 16.0 - 1.0
    mask[:h, :w] = 1
    return px, mask


# (height, width) of each image: full, short side 28 (7 patches of 4), both orientations.
SIZES = [(32, 32), (28, 32), (32, 28), (28, 28)]


def image_size(i):
    return SIZES[i % len(SIZES)]


def build_ids(tok, n_pairs, latents, prompt_words):
    """Ids of the SPEC §2 chat with n_pairs reference pairs and a target turn."""
    image = "<fake_token_around_image>" + "<image>" * latents + "<fake_token_around_image>"
    text = ""
    for i in range(n_pairs):
        for sign in ("-", "+"):
            prompt = " ".join(prompt_words[(i + k) % len(prompt_words)] for k in range(3))
            text += f"User:{image}The prompt is '{prompt}' Score for this image?<end_of_utterance>\nAssistant: {sign}<end_of_utterance>\n"
    text += f"User:{image}The prompt is 'a red car' Score for this image?<end_of_utterance>\nAssistant:"
    return tok(text, add_special_tokens=True)["input_ids"]


def fingerprint(ckpt):
    out = {}
    with safe_open(os.path.join(ckpt, "model.safetensors"), "pt") as f:
        for name in ["model.text_model.layers.0.self_attn.q_proj.weight", "model.connector.perceiver_resampler.latents", "lm_head.weight"]:
            t = f.get_tensor(name).float().flatten()
            out[name] = {"sum": float(t.double().sum()), "abs_sum": float(t.double().abs().sum()), "first": [float(x) for x in t[:4]]}
    return out


def floats(t):
    return [float(x) for x in t.flatten()]


def buckets(per_side):
    """Bucket id per coordinate for every real count, read off Idefics2VisionEmbeddings itself."""
    patch = 2
    cfg = Idefics2VisionConfig(hidden_size=1, image_size=per_side * patch, patch_size=patch, num_channels=1)
    emb = Idefics2VisionEmbeddings(cfg)
    with torch.no_grad():
        emb.patch_embedding.weight.zero_()
        emb.patch_embedding.bias.zero_()
        emb.position_embedding.weight.copy_(torch.arange(per_side * per_side, dtype=torch.float32)[:, None])
    out = {}
    for count in range(1, per_side + 1):
        pam = torch.zeros(1, per_side, per_side, dtype=torch.bool)
        pam[0, :count, :count] = True
        pv = torch.zeros(1, 1, per_side * patch, per_side * patch)
        with torch.no_grad():
            ids = emb(pv, pam)[0, :, 0].reshape(per_side, per_side)
        # ids[r, c] = bucket(r) * per_side + bucket(c); the first row gives bucket(c).
        out[str(count)] = [int(ids[0, c].item()) for c in range(count)]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = Idefics2ForConditionalGeneration.from_pretrained(args.checkpoint, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    tok = AutoTokenizer.from_pretrained(args.checkpoint)
    cfg = model.config
    latents = cfg.perceiver_config.resampler_n_latents
    size = cfg.vision_config.image_size
    words = ["cat", "photo", "portrait", "castle", "forest", "robot", "painting", "sunset"]

    def run(seqs, img_lists):
        """seqs: list of id lists; img_lists: per sequence, list of image indices. Right padding."""
        B = len(seqs)
        T = max(len(s) for s in seqs)
        ids = torch.full((B, T), tok.pad_token_id, dtype=torch.long)
        am = torch.zeros(B, T, dtype=torch.long)
        for b, s in enumerate(seqs):
            ids[b, : len(s)] = torch.tensor(s)
            am[b, : len(s)] = 1
        n_max = max(len(l) for l in img_lists)
        pv = torch.zeros(B, n_max, 3, size, size)
        pm = torch.zeros(B, n_max, size, size, dtype=torch.long)
        for b, l in enumerate(img_lists):
            for j, img in enumerate(l):
                h, w = image_size(img)
                pv[b, j], pm[b, j] = pixels(img, h, w, size)
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=am, pixel_values=pv, pixel_attention_mask=pm, output_attentions=True, output_hidden_states=True)
        last = am.sum(1) - 1
        logits = torch.stack([out.logits[b, last[b]] for b in range(B)])
        return out, logits, last

    # single
    ids17 = build_ids(tok, 8, latents, words)
    imgs17 = list(range(17))
    out, logits, last = run([ids17], [imgs17])
    with torch.no_grad():
        pv2 = torch.stack([pixels(i, *image_size(i), size)[0] for i in (0, 1)])
        pm2 = torch.stack([pixels(i, *image_size(i), size)[1] for i in (0, 1)])
        patch = cfg.vision_config.patch_size
        sub = pm2.unfold(1, patch, patch).unfold(2, patch, patch)
        pam = sub.sum(dim=(-1, -2)) == patch * patch
        vis = model.model.vision_model(pixel_values=pv2, patch_attention_mask=pam).last_hidden_state
        conn = model.model.connector(vis, attention_mask=pam.view(2, -1))
    att_last = out.attentions[-1][0, :, last[0], : last[0] + 1]
    single = {
        "input_ids": ids17,
        "images": imgs17,
        "logits": floats(logits[0]),
        "vision_image0_first64": floats(vis[0].flatten()[:64]),
        "vision_image1_abs_sum": float(vis[1].double().abs().sum()),
        "vision_image1_valid_patches": int(pam[1].sum()),
        "connector_images01": floats(conn),
        "attention_last_layer_last_query": floats(att_last),
        "hidden_last_layer_last_position": floats(out.hidden_states[-1][0, last[0]]),
    }

    # padded
    ids_a = build_ids(tok, 1, latents, words)  # 3 images
    ids_b = build_ids(tok, 2, latents, words)  # 5 images
    imgs_a = [3, 6, 9]
    imgs_b = [2, 5, 8, 11, 14]
    n_a = ids_a.count(cfg.image_token_id) // latents
    assert n_a == 3, n_a
    _, logits_pad, last_pad = run([ids_a, ids_b], [imgs_a, imgs_b])
    _, logits_a, _ = run([ids_a], [imgs_a])
    _, logits_b, _ = run([ids_b], [imgs_b])
    diff = max(float((logits_pad[0] - logits_a[0]).abs().max()), float((logits_pad[1] - logits_b[0]).abs().max()))
    print(f"padded vs unpadded max |diff| in transformers: {diff:.3g}")
    padded = {
        "input_ids": [ids_a, ids_b],
        "images": [imgs_a, imgs_b],
        "pad_token_id": tok.pad_token_id,
        "last_index": [int(x) for x in last_pad],
        "logits": [floats(logits_pad[0]), floats(logits_pad[1])],
        "logits_unpadded": [floats(logits_a[0]), floats(logits_b[0])],
    }

    golden = {
        "about": "transformers Idefics2ForConditionalGeneration (eval, float32, eager attention) on the tiny random checkpoint; made by goldens/make_idefics2_goldens.py",
        "transformers_version": __import__("transformers").__version__,
        "torch_version": torch.__version__,
        "checkpoint": {"preset": "tiny", "seed": 0},
        "fingerprint": fingerprint(args.checkpoint),
        "image_sizes": SIZES,
        "image_size": size,
        "single": single,
        "padded": padded,
        "buckets": {"70": buckets(70), "8": buckets(8)},
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(golden, f, separators=(",", ":"))
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes); single logits[:4] = {single['logits'][:4]}")


if __name__ == "__main__":
    main()
