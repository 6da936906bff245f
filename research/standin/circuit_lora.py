"""
RESEARCH, not used by `npm start`: stage 1's pace on the taste-free base, in an exact small model of
its layer-1 reader (seconds per run instead of the transformer's minutes on this loaded CPU).

The base's residual stream at the reader is known in closed form (build_reader_base.py): the final
"Assistant:" carries CONST and the target image's 6 gathered attribute dims, each answer "+"/"-"
carries CONST, LABEL, SIGN and its image's gathered dims; RMSNorm, the base's layer-1 q/k/v/o
weights (read from the checkpoint), RoPE at the chat's real positions (answers every 29 tokens,
final at 490 with 8 pairs and no prompts), softmax over the 16 answers (the answer gate leaves the
other tokens e^-30), o_proj into the vote, the final RMSNorm and lm_head (z+ = -z-, every other
token at -12). LoRA (PEFT: gaussian A with std 1/r, B = 0, dropout on the input, scale alpha/r) on
the chosen layer-1 projections; AdamW with linear decay; base + contrastive loss (SPEC section 4).
Codes are the images' true attributes (perception reads them at 98-100%).

  python research/standin/circuit_lora.py --base <kernel base dir> --data <synthpick raw dir> --steps 150 --lr 5e-4 [--mods q,k] [--r 8]
"""
import argparse
import json
import math
import os
import random
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pretrain_base import load_comparisons  # noqa: E402

OFFSET = [0, 4, 10, 14, 18, 21]
CONST, LABEL, SIGN, GATHERED, VOTE = 25, 26, 27, 32, 60


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--mods", default="q,k,v,o")
    p.add_argument("--r", type=int, default=8)
    p.add_argument("--alpha", type=float, default=8)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--base-weight", type=float, default=1.0)
    p.add_argument("--wd", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=50)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    W = load_file(os.path.join(a.base, "model.safetensors"))
    cfg = json.load(open(os.path.join(a.base, "config.json")))
    tc = cfg["text_config"]
    theta = (tc.get("rope_parameters") or {}).get("rope_theta", tc.get("rope_theta"))
    pre = "model.text_model.layers.1.self_attn."
    Wq, Wk, Wv, Wo = (W[pre + f"{m}_proj.weight"].float() for m in "qkvo")
    d, hd = 128, 32
    truth = json.load(open(os.path.join(a.data, "synthpick-truth.json")))["images"]
    df = load_comparisons(a.data)

    def code(uid):
        v = torch.zeros(d)
        for g, val in enumerate(truth[uid]):
            v[GATHERED + OFFSET[g] + val] = 1.0
        return v

    hist = {}
    for r in df.itertuples(index=False):
        liked, disliked = (r.image_0_uid, r.image_1_uid) if r.label_0 == 1.0 else (r.image_1_uid, r.image_0_uid)
        hist.setdefault(r.user_id, []).append((code(liked), code(disliked)))
    split = random.Random(42)
    train_t, val_t, pool = [], [], {}
    for u in sorted(hist):
        idx = list(range(len(hist[u])))
        split.shuffle(idx)
        nv = max(1, len(idx) // 5)
        val_t += [(u, i) for i in idx[:nv]]
        train_t += [(u, i) for i in idx[nv:]]
        pool[u] = idx[nv:]
    eval_refs = {t: random.Random(hash(t) % 100003).sample(pool[t[0]], min(8, len(pool[t[0]]))) for t in val_t}

    pos_ans = torch.tensor([27 + 29 * j for j in range(16)], dtype=torch.float32)
    pos_final = 490.0
    w = theta ** (-torch.arange(hd // 2, dtype=torch.float32) * 2 / hd)

    def rope(x, pos):  # x [..., hd], pos broadcastable to x[..., 0]
        ang = pos[..., None] * w
        cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)
        rot = torch.cat([-x[..., hd // 2:], x[..., :hd // 2]], -1)
        return x * cos + rot * sin

    mods = a.mods.split(",") if a.mods else []
    lora = {}
    for m, Wm in zip("qkvo", (Wq, Wk, Wv, Wo)):
        if m in mods:
            A = torch.randn(a.r, Wm.shape[1]) / a.r
            lora[m] = (A.requires_grad_(), torch.zeros(Wm.shape[0], a.r, requires_grad=True))
    scale = a.alpha / a.r

    def proj(m, Wm, x, train):
        y = x @ Wm.T
        if m in lora:
            A, B = lora[m]
            xd = F.dropout(x, a.dropout, train) if a.dropout else x
            y = y + (xd @ A.T @ B.T) * scale
        return y

    def norm(x):
        return x / x.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()

    def margin(t, refs, signs, train):
        """t [B, d] target codes, refs [B, 16, d], signs [B, 16] -> z+ - z- [B], z+ [B]."""
        xf = t.clone()
        xf[:, CONST] = 1.0
        xa = refs.clone()
        xa[:, :, CONST] = 1.0
        xa[:, :, LABEL] = 1.0
        xa[:, :, SIGN] = signs
        xf, xa = norm(xf), norm(xa)
        q = proj("q", Wq, xf, train).view(-1, 4, hd)
        k = proj("k", Wk, xa, train).view(-1, 16, 2, hd)
        v = proj("v", Wv, xa, train).view(-1, 16, 2, hd)
        q = rope(q, torch.tensor(pos_final))
        k = rope(k, pos_ans[None, :, None])
        kk = k[:, :, [0, 0, 1, 1]]          # GQA: q heads 0,1 -> kv 0; 2,3 -> kv 1
        vv = v[:, :, [0, 0, 1, 1]]
        s = torch.einsum("bhd,bkhd->bhk", q, kk) / math.sqrt(hd)
        att = torch.softmax(s, -1)
        o = torch.einsum("bhk,bkhd->bhd", att, vv).reshape(-1, 4 * hd)
        out = proj("o", Wo, o, train)
        resid = torch.zeros_like(xf)
        resid[:, CONST] = 1.0
        resid[:, GATHERED:GATHERED + 24] = t[:, GATHERED:GATHERED + 24]
        resid = norm(resid + out)  # the final RMSNorm of the residual (input + attention)
        gamma = 3.0 * math.sqrt(7 / d)
        zp = gamma * resid[:, VOTE]
        zo = -12.0 * math.sqrt(7 / d) * resid[:, CONST]
        return zp, zo

    def batch(targets, train):
        tl, td, rf, sg = [], [], [], []
        for u, i in targets:
            liked, disliked = hist[u][i]
            refs = rng.sample([j for j in pool[u] if j != i], min(8, len(pool[u]) - (i in pool[u]))) if train else eval_refs[(u, i)]
            refs = (refs * 8)[:8]
            tl.append(liked)
            td.append(disliked)
            rf.append(torch.stack([hist[u][j][1] for j in refs] + [hist[u][j][0] for j in refs]))
            sg.append(torch.tensor([-1.0] * 8 + [1.0] * 8))
        return torch.stack(tl), torch.stack(td), torch.stack(rf), torch.stack(sg)

    val_batch = batch(val_t, False)

    def evaluate():
        with torch.no_grad():
            tl, td, rf, sg = val_batch
            ml, _ = margin(tl, rf, sg, False)
            md, _ = margin(td, rf, sg, False)
            return float(((ml > md).float() + 0.5 * (ml == md).float()).mean())

    params = [x for ab in lora.values() for x in ab]
    print(f"{len(train_t)} training, {len(val_t)} validation targets; LoRA on layer-1 {mods} r {a.r}; step 0 validation accuracy {evaluate():.4f}", flush=True)
    if not params:
        return
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=a.wd)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s_: max(0.0, 1 - s_ / a.steps))
    order = []
    logV = math.log(32000)
    for step in range(1, a.steps + 1):
        tg = []
        for _ in range(a.batch):
            if not order:
                order = train_t[:]
                rng.shuffle(order)
            tg.append(order.pop())
        tl, td, rf, sg = batch(tg, True)
        zl, ol = margin(tl, rf, sg, True)
        zd, od = margin(td, rf, sg, True)
        # logits [+, -, every other token (V of them at zo)]
        def ce(zp, zo, plus):
            lg = torch.stack([zp, -zp, zo + logV], 1)
            return F.cross_entropy(lg, torch.full((len(zp),), 0 if plus else 1))
        base = (ce(zd, od, False) + ce(zl, ol, True)) / 2
        cp = F.cross_entropy(torch.stack([zl, zd], 1), torch.zeros(len(zl), dtype=torch.long)) + \
            F.cross_entropy(torch.stack([-zl, -zd], 1), torch.ones(len(zl), dtype=torch.long))
        loss = a.base_weight * base + cp
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % a.eval_every == 0 or step == a.steps:
            print(f"step {step}: loss {loss.item():.3f} validation accuracy {evaluate():.4f}", flush=True)


if __name__ == "__main__":
    main()
