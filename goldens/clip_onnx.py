"""Export a transformers CLIP checkpoint to the layout transformers.js loads (the Xenova/* repos):

    <out>/config.json, tokenizer.json, tokenizer_config.json, preprocessor_config.json
    <out>/onnx/text_model.onnx     input_ids [batch, sequence] -> text_embeds, last_hidden_state
    <out>/onnx/vision_model.onnx   pixel_values [batch, 3, H, W] -> image_embeds, last_hidden_state
    (+ <name>.onnx_data beside a graph whose weights exceed 1.8 GB: ViT-H-14's image tower)

which is what @userpref/scorer-clip reads (CLIPTextModelWithProjection / CLIPVisionModelWithProjection
in transformers.js). Used by make_clip_scorer_goldens.py for the test fixtures and by hand for real
checkpoints (float32; ViT-H-14 takes a few GB of RAM and a few minutes on CPU):

    python goldens/clip_onnx.py --model <HF CLIP dir> --out <dir>

Both ONNX files are checked against PyTorch in onnxruntime before the command returns.
"""
import argparse
import pathlib
import shutil

import numpy as np
import torch


class _Text(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids):
        o = self.m(input_ids=input_ids)
        return o.text_embeds, o.last_hidden_state


class _Vision(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, pixel_values):
        o = self.m(pixel_values=pixel_values)
        return o.image_embeds, o.last_hidden_state


# ONNX files are protobufs, which cannot exceed 2 GB: larger encoders (ViT-H-14's image tower is
# 2.5 GB in float32) keep their weights in one external file <name>.onnx_data beside the graph, the
# layout transformers.js loads with `use_external_data_format` (scorer-clip passes it when the file
# is there).
EXTERNAL_DATA_BYTES = 1_800_000_000


def _export(module, dummy, path, in_name, out_names, dyn, external_data=None):
    import tempfile
    import onnx
    path.parent.mkdir(parents=True, exist_ok=True)
    size = sum(p.numel() * p.element_size() for p in module.parameters())
    external = size > EXTERNAL_DATA_BYTES if external_data is None else external_data
    with tempfile.TemporaryDirectory() as tmp:
        raw = pathlib.Path(tmp) / 'model.onnx'
        torch.onnx.export(module, (dummy,), str(raw), input_names=[in_name], output_names=out_names,
                          dynamic_axes={in_name: dyn, out_names[0]: {0: 'batch'}, out_names[1]: {0: 'batch'}},
                          opset_version=17, dynamo=False, do_constant_folding=True)
        model = onnx.load(str(raw))  # also reads any per-tensor files the exporter wrote beside it
        data = path.parent / (path.name + '_data')
        data.unlink(missing_ok=True)
        if external:
            onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data.name, size_threshold=0)
        else:
            onnx.save_model(model, str(path))


def export_clip(model, out, tokenizer=None, image_processor=None, check=True, external_data=None):
    """Writes the ONNX pair (+ configs) of a transformers CLIPModel; returns the max |ONNX - torch|.
    external_data: None = only for an encoder over 1.8 GB, True / False = always / never."""
    from transformers import CLIPTextModelWithProjection, CLIPVisionModelWithProjection
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    model.config.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    if image_processor is not None:
        image_processor.save_pretrained(out)
    sd = model.state_dict()
    tcfg, vcfg = cfg.text_config, cfg.vision_config
    tcfg._attn_implementation = 'eager'
    vcfg._attn_implementation = 'eager'
    tm = CLIPTextModelWithProjection(tcfg).eval()
    tm.load_state_dict({k: v for k, v in sd.items() if k.startswith(('text_model.', 'text_projection.'))}, strict=True)
    vm = CLIPVisionModelWithProjection(vcfg).eval()
    vm.load_state_dict({k: v for k, v in sd.items() if k.startswith(('vision_model.', 'visual_projection.'))}, strict=True)
    ids = torch.tensor([[min(tcfg.bos_token_id, tcfg.vocab_size - 1), 5, 6, tcfg.eos_token_id]])
    px = torch.randn(1, 3, vcfg.image_size, vcfg.image_size, generator=torch.Generator().manual_seed(0))
    _export(_Text(tm), ids, out / 'onnx' / 'text_model.onnx', 'input_ids', ['text_embeds', 'last_hidden_state'], {0: 'batch', 1: 'sequence'}, external_data)
    _export(_Vision(vm), px, out / 'onnx' / 'vision_model.onnx', 'pixel_values', ['image_embeds', 'last_hidden_state'], {0: 'batch'}, external_data)
    err = 0.0
    if check:
        import onnxruntime as ort
        with torch.no_grad():
            ts = ort.InferenceSession(str(out / 'onnx' / 'text_model.onnx'))
            vs = ort.InferenceSession(str(out / 'onnx' / 'vision_model.onnx'))
            err = max(err, float(np.abs(ts.run(None, {'input_ids': ids.numpy()})[0] - tm(input_ids=ids).text_embeds.numpy()).max()))
            px2 = torch.randn(2, 3, vcfg.image_size, vcfg.image_size, generator=torch.Generator().manual_seed(1))
            err = max(err, float(np.abs(vs.run(None, {'pixel_values': px2.numpy()})[0] - vm(pixel_values=px2).image_embeds.numpy()).max()))
    return err


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--model', required=True, help='transformers CLIP checkpoint directory (CLIPModel: config.json + weights, tokenizer, preprocessor_config.json)')
    ap.add_argument('--processor', help='directory with the tokenizer and preprocessor_config.json, when --model lacks them (PickScore_v1 uses laion/CLIP-ViT-H-14-laion2B-s32B-b79K\'s)')
    ap.add_argument('--out', required=True)
    ap.add_argument('--external-data', action='store_true', help='keep the weights in onnx/<name>.onnx_data even when the graph would fit in 2 GB')
    a = ap.parse_args()
    from transformers import CLIPModel
    model = CLIPModel.from_pretrained(a.model, attn_implementation='eager').eval()
    err = export_clip(model, a.out, external_data=True if a.external_data else None)
    # The tokenizer and image-processor files, copied as they are.
    src = pathlib.Path(a.processor or a.model)
    for f in ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'preprocessor_config.json']:
        if (src / f).exists():
            shutil.copy(src / f, pathlib.Path(a.out) / f)
        elif f != 'special_tokens_map.json':
            raise SystemExit(f'{src / f} is missing: pass --processor <dir with the tokenizer and preprocessor files>')
    print(f'wrote {a.out}; max |onnx - torch| of the projected embeddings: {err:.3g}; '
          f'exp(logit_scale) = {float(model.logit_scale.detach().exp()):.6g} (the scorer\'s logitScale option)')


if __name__ == '__main__':
    main()
