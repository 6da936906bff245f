"""Tiny random CLIP checkpoints in the layout transformers.js loads, and PyTorch's scores on them,
for plugins/scorer-clip (the paper's zero-shot scorers of Table 1: CLIP score, PickScore, the LAION
aesthetic predictor).

Rerun (from the repository root; needs goldens/requirements.txt (torch, transformers, pillow,
safetensors, onnx, onnxruntime) and open_clip_torch + torchvision for the HPS fixture, e.g. installed with
`pip install --no-deps --target tmp/ocdeps open_clip_torch torchvision timm ftfy wcwidth`;
the tests themselves need no Python):
    PYTHONPATH=tmp/ocdeps python goldens/make_clip_scorer_goldens.py

Writes plugins/scorer-clip/test/fixtures/:
  clip-tiny/        openai-CLIP-like (quick_gelu), seed 0
  clip-tiny-gelu/   CLIP-H-like (gelu, as PickScore / HPS v2), seed 1, other widths
  hps-tiny/         a random open_clip CLIP converted by convert_open_clip_to_hf.py; its reference
                    is open_clip itself (SimpleTokenizer, torchvision transform, HPS's cosine)
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

The reference (but for hps-tiny) is transformers' CLIPModel (eager attention, float32) on the processor's own output
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
import torch
from PIL import Image
from safetensors.torch import save_file
import convert_open_clip_to_hf as conv

conv.torchvision_without_ops()  # before transformers imports torchvision (if installed)
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer  # noqa: E402

from clip_onnx import export_clip  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
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
    tok.save_pretrained(d)
    for f in ['vocab.json', 'merges.txt', 'special_tokens_map.json', 'chat_template.jinja']:
        (d / f).unlink(missing_ok=True)
    proc = CLIPImageProcessorPil(size={'shortest_edge': image_size}, crop_size={'height': image_size, 'width': image_size})
    proc.save_pretrained(d)
    # The config.json and ONNX pair come from clip_onnx.export_clip (the export command for real checkpoints).

    onnx_err = export_clip(model, d)
    assert onnx_err < 1e-5, onnx_err
    px = proc(images=list(images.values()), return_tensors='pt')['pixel_values']

    with torch.no_grad():
        # One prompt at a time, unpadded, as the scorer runs it.
        per_prompt = [tok(p, truncation=True, return_tensors='pt')['input_ids'] for p in prompts]
        logits = torch.stack([model(input_ids=i, pixel_values=px).logits_per_text[0] for i in per_prompt])
        image_embeds = model(input_ids=per_prompt[0], pixel_values=px).image_embeds  # L2-normalised
    return {
        'logitScale': float(model.logit_scale.detach().exp()),
        'inputIds': [i[0].tolist() for i in per_prompt],
        'pixelValues': b64f32(px),
        'logitsPerText': logits.tolist(),
        'onnxMaxAbsErrorVsTorch': onnx_err,
    }, model, image_embeds


def make_hps(tok, images, prompts):
    """HPS-like: a tiny random open_clip CLIP (gelu), converted by convert_open_clip_to_hf.py and
    exported like the others; the reference is open_clip itself: its SimpleTokenizer (on the same
    tiny BPE), its torchvision image transform, and HPS's score, the cosine of the normalised
    features (logit scale 1)."""
    import gzip
    open_clip = conv._import_open_clip()
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
    from open_clip.tokenizer import SimpleTokenizer
    torch.manual_seed(3)
    oc_cfg = {'embed_dim': 16, 'vision_cfg': {'image_size': 32, 'layers': 2, 'width': 32, 'head_width': 16, 'patch_size': 8},
              'text_cfg': {'context_length': 77, 'vocab_size': len(tok), 'width': 24, 'heads': 2, 'layers': 2}}
    oc = CLIP(oc_cfg['embed_dim'], CLIPVisionCfg(**oc_cfg['vision_cfg']), CLIPTextCfg(**oc_cfg['text_cfg'])).eval()
    with torch.no_grad():
        for n, p in oc.named_parameters():
            if p.dim() == 1 and ('ln' in n):
                p.add_(0.1 * torch.randn_like(p))
            elif n == 'positional_embedding' or n.endswith('class_embedding'):
                p.normal_(0, 0.5)
    d = OUT / 'hps-tiny'
    if d.exists():
        shutil.rmtree(d)
    vocab, merges = tiny_bpe()
    bpe = d.parent / 'hps-tiny-bpe.txt.gz'
    with gzip.open(bpe, 'wt', encoding='utf-8') as f:
        f.write('#version: 0.2\n' + '\n'.join(f'{a} {b}' for a, b in merges))
    try:
        hf_tok = conv.hf_tokenizer(bpe)
        assert hf_tok.get_vocab() == vocab
        oc_tok = SimpleTokenizer(bpe_path=str(bpe), context_length=77)
    finally:
        bpe.unlink()
    hf = conv.convert(oc, oc_cfg)
    proc = conv.preprocessor(32, open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)
    onnx_err = export_clip(hf, d, hf_tok, proc)
    assert onnx_err < 1e-5, onnx_err
    for f in ['vocab.json', 'merges.txt', 'special_tokens_map.json', 'chat_template.jinja']:
        (d / f).unlink(missing_ok=True)
    transform = open_clip.image_transform(32, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN, std=open_clip.OPENAI_DATASET_STD)
    with torch.no_grad():
        tokens = oc_tok(prompts)
        text = oc.encode_text(tokens, normalize=True)
        px = torch.stack([transform(im) for im in images.values()])
        img = oc.encode_image(px, normalize=True)
        hps = text @ img.T  # HPS v2: image_features @ text_features.T, no scale
        feat_err = conv.compare(oc, hf, tokens, px)
    return {
        'logitScale': 1.0,
        'inputIds': [row[: int(row.argmax()) + 1].tolist() for row in tokens],
        'logitsPerText': hps.tolist(),
        'onnxMaxAbsErrorVsTorch': onnx_err,
        'openClipVsTransformersFeatureError': max(feat_err),
        'torchvisionPixelsMaxAbsDiffVsProcessor': float((px - proc(images=list(images.values()), return_tensors='pt')['pixel_values']).abs().max()),
    }


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
    golden['checkpoints'] = {'clip-tiny': g0, 'clip-tiny-gelu': g1, 'hps-tiny': make_hps(tok, images, PROMPTS)}

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
    for k, g in golden['checkpoints'].items():
        print(k, {n: v for n, v in g.items() if 'Error' in n or 'Diff' in n})


if __name__ == '__main__':
    main()
