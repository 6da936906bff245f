"""
RESEARCH, not used by `npm start`: how far does stage 1 (PEFT LoRA, base + contrastive loss, SPEC
section 4) move a stand-in base in N updates, and what limits the pace? The reference
implementation (PyTorch, transformers, PEFT) of the TS stage 1, ~10x faster here than wasm, on a
synthpick set's own split: per user, a seeded 20% of the comparisons are validation targets, the
rest training targets and the reference pool (as the by-comparison import does, but not the same
draw: numbers here are for choosing settings, the demo's come from the TS apps).

  python research/standin/lora_probe.py --base apps/demo/base/idefics2-small-kernel --data data/synthpick/raw \
      --steps 150 --lr 5e-4 [--target '<regex>'] [--r 8] [--alpha 8] [--dropout 0.1] [--base-weight 1]

Prints validation accuracy with 8 reference pairs before training and every --eval-every updates.
"""
import argparse
import glob
import io
import json
import os
import random
import re
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from peft import LoraConfig, get_peft_model
from transformers import AutoProcessor, Idefics2ForConditionalGeneration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pretrain_base import load_comparisons  # noqa: E402

PAPER_TARGET = r".*(text_model|modality_projection|perceiver_resampler).*(down_proj|gate_proj|up_proj|k_proj|q_proj|v_proj|o_proj).*$"


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--data", required=True, help="synthpick raw dir (parquet shards)")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--schedule", choices=["linear", "constant"], default="linear")
    p.add_argument("--target", default=PAPER_TARGET)
    p.add_argument("--r", type=int, default=8)
    p.add_argument("--alpha", type=float, default=8)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--base-weight", type=float, default=1.0)
    p.add_argument("--ref-pairs", type=int, default=8)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--eval-targets", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args()


def main():
    a = parse()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = random.Random(a.seed)
    proc = AutoProcessor.from_pretrained(a.base)
    model = Idefics2ForConditionalGeneration.from_pretrained(a.base, dtype=torch.float32)
    tok = proc.tokenizer
    n_lat = model.config.perceiver_config.resampler_n_latents
    plus_id, minus_id = tok.convert_tokens_to_ids("\u2581+"), tok.convert_tokens_to_ids("\u2581-")
    df = load_comparisons(a.data)
    uids, blobs = {}, []
    for side in (0, 1):
        for uid, jpg in zip(df[f"image_{side}_uid"], df[f"jpg_{side}"]):
            if uid not in uids:
                uids[uid] = len(blobs)
                blobs.append(jpg)
    vm = model.model.vision_model.eval()
    feats = []
    with torch.no_grad():
        for s in range(0, len(blobs), 256):
            ims = [Image.open(io.BytesIO(b)).convert("RGB") for b in blobs[s:s + 256]]
            pv = proc.image_processor([[im] for im in ims], return_tensors="pt", do_image_splitting=False)["pixel_values"][:, 0]
            feats.append(vm(pixel_values=pv).last_hidden_state)
    feats = torch.cat(feats)
    hist = {}
    for r in df.itertuples(index=False):
        liked, disliked = (r.image_0_uid, r.image_1_uid) if r.label_0 == 1.0 else (r.image_1_uid, r.image_0_uid)
        hist.setdefault(r.user_id, []).append((uids[liked], uids[disliked]))
    split_rng = random.Random(42)
    train_t, val_t, pool = [], [], {}
    for u in sorted(hist):
        idx = list(range(len(hist[u])))
        split_rng.shuffle(idx)
        nv = max(1, len(idx) // 5)
        val_t += [(u, i) for i in idx[:nv]]
        train_t += [(u, i) for i in idx[nv:]]
        pool[u] = idx[nv:]
    val_t = random.Random(7).sample(val_t, min(a.eval_targets, len(val_t)))
    eval_refs = {t: random.Random(hash(t) % 100003).sample(pool[t[0]], min(a.ref_pairs, len(pool[t[0]]))) for t in val_t}

    image_str = "<fake_token_around_image>" + "<image>" * n_lat + "<fake_token_around_image>"

    def expand(text):
        return re.sub(r"<fake_token_around_image>(?=[^\s<])", "<fake_token_around_image> ", text.replace("<image>", image_str))

    ids_cache = {}

    def build(u, i, train):
        liked, disliked = hist[u][i]
        if train:
            others = [j for j in pool[u] if j != i]
            refs = rng.sample(others, min(a.ref_pairs, len(others)))
        else:
            refs = eval_refs[(u, i)]
        msgs, images = [], []
        for j in refs:
            l, d = hist[u][j]
            order = [(l, "+"), (d, "-")] if (train and rng.random() < 0.5) else [(d, "-"), (l, "+")]
            for img, ans in order:
                msgs.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Score for this image?"}]})
                msgs.append({"role": "assistant", "content": [{"type": "text", "text": ans}]})
                images.append(img)
        msgs.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Score for this image?"}]})
        key = tuple(m["content"][-1]["text"] for m in msgs)
        ids = ids_cache.get(key)
        if ids is None:
            ids = ids_cache[key] = tok(expand(proc.apply_chat_template(msgs, add_generation_prompt=True)), add_special_tokens=True)["input_ids"]
        return ids, images + [liked], images + [disliked]

    cfg = LoraConfig(r=a.r, lora_alpha=a.alpha, lora_dropout=a.dropout, target_modules=a.target, init_lora_weights="gaussian")
    pm = get_peft_model(model, cfg)
    inner = pm.base_model.model
    trainable = [p_ for p_ in pm.parameters() if p_.requires_grad]
    names = [n for n, p_ in pm.named_parameters() if p_.requires_grad]
    mods = sorted({n.split(".lora_")[0].replace("base_model.model.model.", "") for n in names})
    print(f"LoRA on {len(mods)} modules ({sum(p_.numel() for p_ in trainable)} parameters): {', '.join(mods)}", flush=True)

    def forward(batch):
        seqs = [(ex[0], imgs) for ex in batch for imgs in (ex[1], ex[2])]
        n = max(len(s) for s, _ in seqs)
        ids = torch.full((len(seqs), n), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), n), dtype=torch.long)
        for r_, (s_, _) in enumerate(seqs):
            ids[r_, :len(s_)] = torch.tensor(s_)
            mask[r_, :len(s_)] = 1
        rows = torch.tensor([i for _, imgs in seqs for i in imgs], dtype=torch.long)
        emb = inner.model.text_model.get_input_embeddings()(ids)
        img = inner.model.connector(feats[rows], attention_mask=torch.ones(len(rows), feats.shape[1], dtype=torch.bool))
        emb = inner.model.inputs_merger(input_ids=ids, inputs_embeds=emb, image_hidden_states=img)
        h = inner.model.text_model(inputs_embeds=emb, attention_mask=mask).last_hidden_state
        z = inner.lm_head(h[torch.arange(len(seqs)), mask.sum(1) - 1])
        return z[0::2], z[1::2]

    def evaluate():
        pm.eval()
        right = 0.0
        with torch.no_grad():
            for s in range(0, len(val_t), 16):
                zp, zn = forward([build(u, i, False) for u, i in val_t[s:s + 16]])
                mp, mn = zp[:, plus_id] - zp[:, minus_id], zn[:, plus_id] - zn[:, minus_id]
                right += float(((mp > mn).float() + 0.5 * (mp == mn).float()).sum())
        pm.train()
        return right / len(val_t)

    print(f"{len(train_t)} training targets, {len(val_t)} validation targets; step 0 validation accuracy {evaluate():.4f}", flush=True)
    decay = [p_ for p_ in trainable if p_.dim() >= 2]
    opt = torch.optim.AdamW(trainable, lr=a.lr, weight_decay=a.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, (lambda s: max(0.0, 1 - s / a.steps)) if a.schedule == "linear" else (lambda s: 1.0))
    order = []
    t0 = time.time()
    pm.train()
    hist_l = []
    for step in range(1, a.steps + 1):
        batch = []
        for _ in range(a.batch):
            if not order:
                order = train_t[:]
                rng.shuffle(order)
            u, i = order.pop()
            batch.append(build(u, i, True))
        zp, zn = forward(batch)
        base = (F.cross_entropy(zn, torch.full((len(zn),), minus_id)) + F.cross_entropy(zp, torch.full((len(zp),), plus_id))) / 2
        cp = F.cross_entropy(torch.stack([zp[:, plus_id], zn[:, plus_id]], 1), torch.zeros(len(zp), dtype=torch.long)) + \
            F.cross_entropy(torch.stack([zp[:, minus_id], zn[:, minus_id]], 1), torch.ones(len(zp), dtype=torch.long))
        loss = a.base_weight * base + cp
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        hist_l.append((base.item(), cp.item()))
        if step % a.eval_every == 0 or step == a.steps:
            b, c = np.mean(hist_l[-a.eval_every:], 0)
            print(f"step {step}: base {b:.3f} contrastive {c:.3f}, validation accuracy {evaluate():.4f} ({(time.time() - t0) / step:.2f}s/step)", flush=True)


if __name__ == "__main__":
    main()
