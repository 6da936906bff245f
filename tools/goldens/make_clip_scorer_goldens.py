"""Tiny random CLIP checkpoints in the layout transformers.js loads, and PyTorch's scores on them,
for plugins/scorer-clip (the paper's zero-shot scorers of Table 1: CLIP score, PickScore, the LAION
aesthetic predictor).

Rerun (from the repository root; needs /work/venv with torch, transformers, pillow, safetensors,
onnx, onnxruntime; the tests themselves need no Python):
    /work/venv/bin/python tools/goldens/make_clip_scorer_goldens.py

Writes plugins/scorer-clip/test/fixtures/:
  clip-tiny/        openai-CLIP-like (quick_gelu), seed 0
  clip-tiny-gelu/   CLIP-H-like (gelu, as PickScore / HPS v2), seed 1, other widths
      config.json, tokenizer.json, tokenizer_config.json, preprocessor_config.json,
      onnx/text_model.onnx, onnx/vision_model.onnx  (what transformers.js's
      CLIPTextModelWithProjection / CLIPVisionModelWithProjection load, as in the Xenova/* repos:
      inputs input_ids / pixel_values, outputs text_embeds / image_embeds + last_hidden_state)
  aesthetic-tiny.safetensors  an MLP head with the LAION improved-aesthetic-predictor's layer
      names (layers.0, .2, .4, .6, .7: Linear, Dropout, Linear, Dropout, Linear, Dropout, Linear,
      Linear; no activation), sized for clip-tiny's projection
  images/*.png      deterministic images of several sizes (downscaled, upscaled, portrait)
  golden.json       per checkpoint: token ids, pixel values (base64 float32), PyTorch's
                    logits_per_text (logit_scale.exp() * cosine) for every (prompt, image), the
                    aesthetic MLP's score on clip-tiny; and for the real CLIP preprocessing (shortest
                    edge 224, crop 224) the sha256 of Pillow's resized + cropped uint8 pixels and
                    the processor's float output at a few positions.

The reference is transformers' CLIPModel (eager attention, float32) on the processor's own output
(CLIPImageProcessorPil, CLIPTokenizer), i.e. independent of the ONNX export and of the TS code.
The script also runs both ONNX files in onnxruntime and checks them against PyTorch.
"""
import base64
import collections
import hashlib
import json
import math
import pathlib
import shutil

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import (CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTextModelWithProjection,
                          CLIPTokenizer, CLIPVisionModelWithProjection)

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / 'plugins' / 'scorer-clip' / 'test' / 'fixtures'

PROMPTS = [
    'a red fox in the snow',
    'A painting of a lighthouse at night, oil on canvas',
    'cat',
    # longer than 77 tokens: truncated as CLIP truncates (BOS + 75 + EOS)
    ' '.join(['a very detailed photo of a small green house with a red door and two windows'] * 6),
]

# A small corpus for the tiny BPE: the merges cover common pieces of the prompts, the rest falls
# back to single bytes, as CLIP's BPE does for unknown words.
CORPUS = ' '.join(PROMPTS) + ' the a of and in with photo painting portrait landscape red green blue night snow house'


def bytes_to_unicode():
    """CLIP's (GPT-2's) reversible byte -> unicode table."""
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def tiny_bpe(n_merges=40):
    """Vocabulary and merges of a CLIP-style BPE learned on CORPUS (words end in '</w>')."""
    b2u = bytes_to_unicode()
    base = list(b2u.values())
    vocab = base + [c + '</w>' for c in base]
    words = collections.Counter(CORPUS.lower().split())
    seqs = {w: tuple(b2u[b] for b in w.encode('utf-8')[:-1]) + (b2u[w.encode('utf-8')[-1]] + '</w>',) for w in words}
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, s in seqs.items():
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += words[w]
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append((a, b))
        vocab.append(a + b)
        for w, s in seqs.items():
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = tuple(out)
    vocab += ['<|startoftext|>', '<|endoftext|>']
    return {t: i for i, t in enumerate(vocab)}, merges


def make_tokenizer():
    vocab, merges = tiny_bpe()
    return CLIPTokenizer(vocab=vocab, merges=[(a, b) for a, b in merges], model_max_length=77)


def make_images():
    """Smooth deterministic RGB images (small PNGs) of several sizes."""
    specs = [('landscape', 96, 80), ('portrait', 40, 56), ('small', 20, 24), ('square', 64, 64)]
    imgs = {}
    for k, (name, w, h) in enumerate(specs):
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        r = 127.5 + 127.5 * np.sin(x / (3.0 + k) + y / 7.0)
        g = 255.0 * x / max(1, w - 1)
        b = 127.5 + 127.5 * np.cos((x - w / 2) * (y - h / 2) / (40.0 + 10 * k))
        b[(x - w / 3) ** 2 + (y - h / 2) ** 2 < (min(w, h) / 5) ** 2] = 255
        arr = np.clip(np.stack([r, g, b], -1).round(), 0, 255).astype(np.uint8)
        imgs[name] = Image.fromarray(arr, 'RGB')
    return imgs


def make_large_image():
    """A 384x288 image for the real-size (224) preprocessing check."""
    h, w = 288, 384
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127.5 + 127.5 * np.sin(x / 11.0) * np.cos(y / 17.0)
    g = 255.0 * y / (h - 1)
    b = np.where(((x // 32) + (y // 32)) % 2 == 0, 230.0, 25.0)
    arr = np.clip(np.stack([r, g, b], -1).round(), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, 'RGB')


def b64f32(t):
    return base64.b64encode(np.ascontiguousarray(t.detach().numpy().astype('<f4')).tobytes()).decode()


class Text(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids):
        o = self.m(input_ids=input_ids)
        return o.text_embeds, o.last_hidden_state


class Vision(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, pixel_values):
        o = self.m(pixel_values=pixel_values)
        return o.image_embeds, o.last_hidden_state


def export(model, dummy, path, in_name, out_names, dyn):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (dummy,), str(path), input_names=[in_name], output_names=out_names,
                      dynamic_axes={in_name: dyn, out_names[0]: {0: 'batch'}, out_names[1]: {0: 'batch'}},
                      opset_version=17, dynamo=False, do_constant_folding=True)


def make_checkpoint(name, seed, text, vision, act, tok, images, prompts):
    torch.manual_seed(seed)
    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    image_size, patch = 32, 8
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=text, intermediate_size=text * 2, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, hidden_act=act, projection_dim=16,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=vision, intermediate_size=vision * 2, num_hidden_layers=2, num_attention_heads=2,
                           image_size=image_size, patch_size=patch, hidden_act=act, projection_dim=16),
        projection_dim=16,
    )
    cfg._attn_implementation = 'eager'
    model = CLIPModel(cfg).eval()
    with torch.no_grad():
        # Trained CLIP models end with logit_scale at its clamp, ln(100); so do PickScore and HPS v2.
        model.logit_scale.fill_(math.log(100.0))
        # Random init leaves LayerNorms at (1, 0): perturb them so a swapped or missing one shows.
        for n, p in model.named_parameters():
            if 'layer_norm' in n or 'layrnorm' in n or 'pre_layrnorm' in n:
                p.add_(0.1 * torch.randn_like(p))
    cfg.save_pretrained(d)
    tok.save_pretrained(d)
    for f in ['vocab.json', 'merges.txt', 'special_tokens_map.json', 'chat_template.jinja']:
        (d / f).unlink(missing_ok=True)
    proc = CLIPImageProcessorPil(size={'shortest_edge': image_size}, crop_size={'height': image_size, 'width': image_size})
    proc.save_pretrained(d)

    sd = model.state_dict()
    tm = CLIPTextModelWithProjection(cfg.text_config).eval()
    tm.load_state_dict({k: v for k, v in sd.items() if k.startswith('text_model.') or k.startswith('text_projection.')}, strict=True)
    vm = CLIPVisionModelWithProjection(cfg.vision_config).eval()
    vm.load_state_dict({k: v for k, v in sd.items() if k.startswith('vision_model.') or k.startswith('visual_projection.')}, strict=True)
    enc = tok(prompts, padding=True, truncation=True, return_tensors='pt')
    ids = enc['input_ids']
    px = proc(images=list(images.values()), return_tensors='pt')['pixel_values']
    export(Text(tm), ids[:1], d / 'onnx' / 'text_model.onnx', 'input_ids', ['text_embeds', 'last_hidden_state'], {0: 'batch', 1: 'sequence'})
    export(Vision(vm), px[:1], d / 'onnx' / 'vision_model.onnx', 'pixel_values', ['image_embeds', 'last_hidden_state'], {0: 'batch'})

    with torch.no_grad():
        # One prompt at a time, unpadded, as the scorer runs it.
        per_prompt = [tok(p, truncation=True, return_tensors='pt')['input_ids'] for p in prompts]
        logits = torch.stack([model(input_ids=i, pixel_values=px).logits_per_text[0] for i in per_prompt])
        image_embeds = model(input_ids=per_prompt[0], pixel_values=px).image_embeds  # L2-normalised
        # The ONNX files against PyTorch (onnxruntime, the engine transformers.js runs in node).
        ts = ort.InferenceSession(str(d / 'onnx' / 'text_model.onnx'))
        vs = ort.InferenceSession(str(d / 'onnx' / 'vision_model.onnx'))
        onnx_err = 0.0
        for i in per_prompt:
            te = ts.run(None, {'input_ids': i.numpy()})[0]
            onnx_err = max(onnx_err, float(np.abs(te - tm(input_ids=i).text_embeds.numpy()).max()))
        ve = vs.run(None, {'pixel_values': px.numpy()})[0]
        onnx_err = max(onnx_err, float(np.abs(ve - vm(pixel_values=px).image_embeds.numpy()).max()))
        assert onnx_err < 1e-5, onnx_err
    return {
        'logitScale': float(model.logit_scale.detach().exp()),
        'inputIds': [i[0].tolist() for i in per_prompt],
        'pixelValues': b64f32(px),
        'logitsPerText': logits.tolist(),
        'onnxMaxAbsErrorVsTorch': onnx_err,
    }, model, image_embeds


def aesthetic_head(dim, seed):
    """The LAION improved-aesthetic-predictor MLP (its layer names, no activations), sized down."""
    torch.manual_seed(seed)
    sizes = [dim, 24, 12, 8, 4]
    mlp = torch.nn.Sequential(
        torch.nn.Linear(sizes[0], sizes[1]), torch.nn.Dropout(0.2),
        torch.nn.Linear(sizes[1], sizes[2]), torch.nn.Dropout(0.2),
        torch.nn.Linear(sizes[2], sizes[3]), torch.nn.Dropout(0.1),
        torch.nn.Linear(sizes[3], sizes[4]),
        torch.nn.Linear(sizes[4], 1),
    ).eval()
    with torch.no_grad():
        # Default init shrinks through five layers; widen it so images get visibly different scores.
        for m in mlp:
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(3.0)
    return mlp


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer()
    images = make_images()
    (OUT / 'images').mkdir(exist_ok=True)
    for name, im in images.items():
        im.save(OUT / 'images' / f'{name}.png', optimize=True)
    large = make_large_image()
    large.save(OUT / 'images' / 'large.png', optimize=True)
    # Re-read what the tests read.
    images = {n: Image.open(OUT / 'images' / f'{n}.png').convert('RGB') for n in images}
    large = Image.open(OUT / 'images' / 'large.png').convert('RGB')

    golden = {'prompts': PROMPTS, 'images': list(images.keys()), 'checkpoints': {}}
    g0, model0, emb0 = make_checkpoint('clip-tiny', 0, 32, 32, 'quick_gelu', tok, images, PROMPTS)
    g1, _, _ = make_checkpoint('clip-tiny-gelu', 1, 24, 40, 'gelu', tok, images, PROMPTS)
    # Both checkpoints share the preprocessing (shortest edge 32, crop 32): keep its output once.
    assert g0['pixelValues'] == g1['pixelValues']
    golden['pixelValues'] = g0.pop('pixelValues')
    golden['pixelShape'] = [len(images), 3, 32, 32]
    g1.pop('pixelValues')
    golden['checkpoints'] = {'clip-tiny': g0, 'clip-tiny-gelu': g1}

    mlp = aesthetic_head(emb0.shape[1], 2)
    save_file({f'layers.{k}': v.contiguous() for k, v in mlp.state_dict().items()},
              str(OUT / 'aesthetic-tiny.safetensors'))
    with torch.no_grad():
        golden['aesthetic'] = {'checkpoint': 'clip-tiny', 'head': 'aesthetic-tiny.safetensors', 'scores': mlp(emb0)[:, 0].tolist()}

    # The real preprocessing (openai/clip-vit-*, PickScore, LAION CLIP-H): shortest edge 224, crop 224.
    proc = CLIPImageProcessorPil()
    out = proc(images=[large, images['landscape']], return_tensors='np')['pixel_values']
    crops = []
    for im in [large, images['landscape']]:
        w, h = im.size
        short, long = (w, h) if w <= h else (h, w)
        nl = int(224 * long / short)
        nw, nh = (224, nl) if w <= h else (nl, 224)
        r = np.asarray(im.resize((nw, nh), Image.BICUBIC))
        top, left = (nh - 224) // 2, (nw - 224) // 2
        crop = r[top:top + 224, left:left + 224]
        # The recipe above is what the processor does: check it before recording it.
        mine = ((crop.astype(np.float64) * (1 / 255)).astype(np.float32) - np.array(proc.image_mean, np.float32)) / np.array(proc.image_std, np.float32)
        crops.append(crop)
        assert np.abs(mine.transpose(2, 0, 1) - out[len(crops) - 1]).max() < 1e-6
    positions = [[0, 0, 0], [1, 100, 37], [2, 223, 223], [0, 111, 112], [2, 5, 200]]
    golden['preprocess224'] = [
        {'image': name, 'cropSha256': hashlib.sha256(np.ascontiguousarray(c).tobytes()).hexdigest(),
         'samples': [{'at': p, 'value': float(out[i][p[0], p[1], p[2]])} for p in positions],
         'sum': float(out[i].astype(np.float64).sum())}
        for i, (name, c) in enumerate(zip(['large', 'landscape'], crops))
    ]
    (OUT / 'golden.json').write_text(json.dumps(golden, indent=1) + '\n')
    for p in sorted(OUT.rglob('*')):
        if p.is_file():
            print(f'{p.stat().st_size:>8}  {p.relative_to(ROOT)}')
    print('onnx vs torch:', g0['onnxMaxAbsErrorVsTorch'], g1['onnxMaxAbsErrorVsTorch'])


if __name__ == '__main__':
    main()
