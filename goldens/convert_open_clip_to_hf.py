"""Convert an open_clip CLIP (e.g. HPS v2 / v2.1: an open_clip ViT-H-14 fine-tune) to a transformers
CLIPModel checkpoint, then to the transformers.js layout @userpref/scorer-clip reads, so HPS runs on the
same CLIP-score code as CLIP and PickScore.

    PYTHONPATH=<open_clip + torchvision> python goldens/convert_open_clip_to_hf.py \\
        --model ViT-H-14 --checkpoint HPS_v2.1_compressed.pt --out models/hps-v2.1 [--hf-out models/hps-v2.1-hf]

Why this is exact (checked by --check and, on a tiny random model, by the scorer-clip golden test):
- open_clip's ViT-H-14 is openai CLIP's architecture (GELU, pre-LN, ln_pre, class token + ln_post +
  proj; causal text transformer, ln_final, text features at the EOT token, the highest id); the
  weights map one to one (the fused attention in_proj splits into q, k, v; proj and text_projection
  are transposed).
- The tokenizer is open_clip's SimpleTokenizer vocabulary (bpe_simple_vocab_16e6, the same BPE as
  openai CLIP) written as a transformers CLIPTokenizer; both truncate to 77 keeping the EOT.
  (open_clip also runs ftfy.fix_text and html unescaping first; ordinary prompts are unchanged.)
- The image transform (Resize shortest edge 224 bicubic on a PIL image, center crop 224, CLIP
  mean/std) is CLIPImageProcessor's.
- HPS's score is image_features @ text_features.T with both L2-normalised, i.e. the cosine: run
  the scorer with logitScale 1 to get HPS's numbers (the ranking does not depend on it).

Needs open_clip_torch (and the torchvision it imports). With a CPU-only torch and a CUDA torchvision
wheel, torchvision's compiled ops do not load; this script only uses its PIL transforms and skips
them (see _import_open_clip).
"""
import argparse
import gzip
import html
import pathlib
import sys
import types

import torch


def torchvision_without_ops():
    """Makes `import torchvision` work when its compiled ops cannot load (a CUDA torchvision wheel on
    a CPU torch): it registers fake kernels of those ops at import. Nothing here uses them (only PIL
    transforms). Call before importing transformers or open_clip, which import torchvision."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        return
    except Exception:
        for k in [k for k in sys.modules if k.startswith('torchvision')]:
            del sys.modules[k]
        sys.modules['torchvision._meta_registrations'] = types.ModuleType('torchvision._meta_registrations')


def _import_open_clip():
    torchvision_without_ops()
    import open_clip
    return open_clip


def bpe_vocab(bpe_path, n_merges=None):
    """open_clip SimpleTokenizer's vocabulary and merges, in its order (ids are list positions)."""
    from open_clip.tokenizer import bytes_to_unicode
    lines = gzip.open(bpe_path).read().decode('utf-8').split('\n')
    merges = [tuple(m.split()) for m in lines[1:(n_merges or 49152 - 256 - 2) + 1] if m.strip()]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + '</w>' for v in vocab]
    vocab += [''.join(m) for m in merges]
    vocab += ['<|startoftext|>', '<|endoftext|>']
    return {t: i for i, t in enumerate(vocab)}, merges


def hf_tokenizer(bpe_path, context_length=77, n_merges=None):
    from transformers import CLIPTokenizer
    vocab, merges = bpe_vocab(bpe_path, n_merges)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=context_length)


def hf_config(oc_cfg, quick_gelu=False, vocab=None):
    from transformers import CLIPConfig
    v, t = oc_cfg['vision_cfg'], oc_cfg['text_cfg']
    for k in ['timm_model_name', 'hf_model_name', 'attentional_pool', 'no_ln_pre', 'final_ln_after_pool', 'ls_init_value', 'qk_norm', 'block_type']:
        if v.get(k) or t.get(k):
            raise SystemExit(f'open_clip option {k} has no counterpart in transformers CLIP; this converter covers openai-style ViTs (ViT-B/L/H/g)')
    if v.get('pool_type', 'tok') != 'tok' or t.get('pool_type', 'argmax') != 'argmax' or t.get('proj_type', 'linear') != 'linear' or t.get('proj_bias'):
        raise SystemExit('only class-token image pooling, EOT text pooling and a bias-free linear text projection map to transformers CLIP')
    act = 'quick_gelu' if quick_gelu else 'gelu'
    vocab_size = t.get('vocab_size', 49408)
    eos = vocab_size - 1
    vwidth = v['width']
    return CLIPConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=t['width'], intermediate_size=int(t['width'] * t.get('mlp_ratio', 4.0)),
                         num_hidden_layers=t['layers'], num_attention_heads=t['heads'], max_position_embeddings=t.get('context_length', 77),
                         hidden_act=act, layer_norm_eps=1e-5, bos_token_id=eos - 1, eos_token_id=eos, pad_token_id=eos,
                         projection_dim=oc_cfg['embed_dim']),
        vision_config=dict(hidden_size=vwidth, intermediate_size=int(vwidth * v.get('mlp_ratio', 4.0)), num_hidden_layers=v['layers'],
                           num_attention_heads=vwidth // v.get('head_width', 64), image_size=v['image_size'], patch_size=v['patch_size'],
                           hidden_act=act, layer_norm_eps=1e-5, projection_dim=oc_cfg['embed_dim']),
        projection_dim=oc_cfg['embed_dim'],
    )


def hf_state_dict(sd, text_layers, vision_layers):
    """open_clip CLIP state dict -> transformers CLIPModel state dict."""
    out = {}

    def block(src, dst):
        w, b = sd[f'{src}.attn.in_proj_weight'], sd[f'{src}.attn.in_proj_bias']
        for name, ws, bs in zip(['q', 'k', 'v'], w.chunk(3, 0), b.chunk(3, 0)):
            out[f'{dst}.self_attn.{name}_proj.weight'] = ws
            out[f'{dst}.self_attn.{name}_proj.bias'] = bs
        out[f'{dst}.self_attn.out_proj.weight'] = sd[f'{src}.attn.out_proj.weight']
        out[f'{dst}.self_attn.out_proj.bias'] = sd[f'{src}.attn.out_proj.bias']
        for a, b2 in [('ln_1', 'layer_norm1'), ('ln_2', 'layer_norm2'), ('mlp.c_fc', 'mlp.fc1'), ('mlp.c_proj', 'mlp.fc2')]:
            out[f'{dst}.{b2}.weight'] = sd[f'{src}.{a}.weight']
            out[f'{dst}.{b2}.bias'] = sd[f'{src}.{a}.bias']

    out['text_model.embeddings.token_embedding.weight'] = sd['token_embedding.weight']
    out['text_model.embeddings.position_embedding.weight'] = sd['positional_embedding']
    for i in range(text_layers):
        block(f'transformer.resblocks.{i}', f'text_model.encoder.layers.{i}')
    out['text_model.final_layer_norm.weight'] = sd['ln_final.weight']
    out['text_model.final_layer_norm.bias'] = sd['ln_final.bias']
    out['text_projection.weight'] = sd['text_projection'].t().contiguous()
    out['vision_model.embeddings.class_embedding'] = sd['visual.class_embedding']
    out['vision_model.embeddings.patch_embedding.weight'] = sd['visual.conv1.weight']
    out['vision_model.embeddings.position_embedding.weight'] = sd['visual.positional_embedding']
    out['vision_model.pre_layrnorm.weight'] = sd['visual.ln_pre.weight']
    out['vision_model.pre_layrnorm.bias'] = sd['visual.ln_pre.bias']
    for i in range(vision_layers):
        block(f'visual.transformer.resblocks.{i}', f'vision_model.encoder.layers.{i}')
    out['vision_model.post_layernorm.weight'] = sd['visual.ln_post.weight']
    out['vision_model.post_layernorm.bias'] = sd['visual.ln_post.bias']
    out['visual_projection.weight'] = sd['visual.proj'].t().contiguous()
    out['logit_scale'] = sd['logit_scale']
    return out


def convert(oc_model, oc_cfg, quick_gelu=False):
    """A transformers CLIPModel with the open_clip model's weights (strict: nothing missing or left over)."""
    from transformers import CLIPModel
    cfg = hf_config(oc_cfg, quick_gelu)
    cfg._attn_implementation = 'eager'
    hf = CLIPModel(cfg).eval()
    sd = hf_state_dict(oc_model.state_dict(), cfg.text_config.num_hidden_layers, cfg.vision_config.num_hidden_layers)
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith('position_ids')]
    if missing or unexpected:
        raise SystemExit(f'weights do not map: missing {missing}, unexpected {unexpected}')
    return hf


def preprocessor(image_size, mean, std):
    from transformers import CLIPImageProcessorPil
    return CLIPImageProcessorPil(size={'shortest_edge': image_size}, crop_size={'height': image_size, 'width': image_size},
                                 image_mean=list(mean), image_std=list(std), resample=3)


def _features(out):
    """transformers 5 returns the projected features as .pooler_output; 4.x returned the tensor."""
    return out.pooler_output if hasattr(out, 'pooler_output') else out


@torch.no_grad()
def compare(oc_model, hf, tokens, pixels):
    """Max |difference| of the normalised text and image features, open_clip vs transformers."""
    oc_t = oc_model.encode_text(tokens, normalize=True)
    oc_i = oc_model.encode_image(pixels, normalize=True)
    ids = [row[: int(row.argmax()) + 1].unsqueeze(0) for row in tokens]  # unpadded, up to the EOT
    hf_t = torch.cat([torch.nn.functional.normalize(_features(hf.get_text_features(input_ids=i)), dim=-1) for i in ids])
    hf_i = torch.nn.functional.normalize(_features(hf.get_image_features(pixel_values=pixels)), dim=-1)
    return float((oc_t - hf_t).abs().max()), float((oc_i - hf_i).abs().max())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', default='ViT-H-14', help='open_clip architecture name (HPS v2: ViT-H-14)')
    ap.add_argument('--checkpoint', required=True, help="open_clip weights: HPS_v2_compressed.pt / HPS_v2.1_compressed.pt (a dict with 'state_dict') or a plain state dict")
    ap.add_argument('--out', required=True, help='transformers.js layout for @userpref/scorer-clip')
    ap.add_argument('--hf-out', help='also save the transformers CLIPModel checkpoint here')
    a = ap.parse_args()
    open_clip = _import_open_clip()
    oc_cfg = open_clip.get_model_config(a.model)
    model = open_clip.create_model(a.model, pretrained=None).eval()
    state = torch.load(a.checkpoint, map_location='cpu', weights_only=False)
    state = state.get('state_dict', state)
    state = {k.removeprefix('module.'): v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    hf = convert(model, oc_cfg, quick_gelu=oc_cfg.get('quick_gelu', False))
    from clip_onnx import export_clip
    bpe = pathlib.Path(open_clip.__file__).parent / 'bpe_simple_vocab_16e6.txt.gz'
    tok = hf_tokenizer(bpe, oc_cfg['text_cfg'].get('context_length', 77))
    proc = preprocessor(oc_cfg['vision_cfg']['image_size'], open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)
    # Check: tokenizer and features against open_clip itself.
    oc_tok = open_clip.get_tokenizer(a.model)
    prompts = ['a photo of a cat', 'A painting of a lighthouse at night, oil on canvas', 'word ' * 100]
    tokens = oc_tok(prompts)
    for p, row in zip(prompts, tokens):
        want = row[: int(row.argmax()) + 1].tolist()
        got = tok(html.unescape(p).strip(), truncation=True)['input_ids']
        if got != want:
            raise SystemExit(f'tokenizer differs from open_clip on {p!r}: {got[:10]}... vs {want[:10]}...')
    pixels = torch.randn(2, 3, oc_cfg['vision_cfg']['image_size'], oc_cfg['vision_cfg']['image_size'], generator=torch.Generator().manual_seed(0))
    dt, di = compare(model, hf, tokens, pixels)
    print(f'open_clip vs transformers, normalised features: text {dt:.3g}, image {di:.3g}')
    if a.hf_out:
        hf.save_pretrained(a.hf_out)
        tok.save_pretrained(a.hf_out)
        proc.save_pretrained(a.hf_out)
    err = export_clip(hf, a.out, tok, proc)
    print(f'wrote {a.out}; max |onnx - torch| {err:.3g}. Score as HPS with: {{"name": "clip", "options": {{"path": "{a.out}", "logitScale": 1}}}}')


if __name__ == '__main__':
    main()
