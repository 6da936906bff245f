"""
The demo's stand-in for a pretrained base: the `small` IDEFICS2 architecture whose perception is
fitted on other people's images, whose history reader is SET by hand, and whose reading weights
are then fitted on other people's choices.

Why (README "The embedded demo", pretrain_base.py's header): idefics2-8b arrives able to see images
and to read a chat history; a 2-layer, 128-wide model pre-trained for minutes on this CPU learns
to see (captioning, probes) but never learns to read a history of liked/disliked images, whatever
the curriculum. So this stand-in supplies the abilities the paper's LoRA starts from. Everything
it learns comes from synthpick `population`: 600 OTHER people of the demo's world (same taste
clusters; none of the demo's users, images or comparisons).

  * perception (fitted): the connector (modality projection + perceiver resampler) is trained so
    every one of an image's 16 output tokens carries the image's 6 attributes as a 24-dim one-hot
    code plus an "image" flag (population images; the attribute labels come from the truth
    sidecar). The vision tower stays the checkpoint's frozen random SigLIP.
  * the reader (set by hand): text layer 0, head 0 makes every text token gather the image right
    before it (RoPE recency: score = G cos(w15 d) - l sin(w8 d), d = distance; text tokens score 0);
    layer 1, heads 0 and 2 make the final "Assistant:" attend to the reference answers "+"/"-" (a
    gate on an answer flag), weighted by exp(target code . U V^T . reference code), and read their
    sign: vote = sum over heads and answers of softmax * sign. lm_head: z+ = gamma * vote = -z-.
    Without references the vote is 0: the base has no opinion of its own.
  * the reading weights U, V (fitted, --reader fitted): they start as the taste-free kernel, beta
    per attribute shared with the target (--reader kernel stops there), and are then fitted on the
    population's comparisons through an exact small model of the circuit (fit_reader), so the base
    knows which attributes people of this world disagree on.
    Everything else in the text model is zero except the MLP gate/up projections (fan-in random),
    so LoRA on down_proj and q/k/v/o can open new paths (what stage 1 is for).

Measured (population held-out people, 8 reference pairs): perception 98.3-100% per attribute;
exact-model accuracy of the kernel 67.5%, fitted ~71-72% (3000 draws; the ceilings bench gives 63.6%
for a linear kernel, 72.4% for the bilinear reader, 77.0% for the cluster posterior, 54.7% for the
population average); through the transformer (pretrain_base.py evaluation, lr 0, 300 targets) the
kernel base reads 69.3% with 8 pairs and 51.3% with none (ties).

rope_theta is 1e6 (as Mistral-7B v0.2) so RoPE pairs 9..14 turn by at most ~0.2 rad over a
500-token chat and can carry the content match. The layout is for chats without prompts (the
demo's --use_prompt 0): with prompts, the text between an image and its answer varies and the
recency window would too.

The demo's default base, apps/demo/base/idefics2-small-kernel, is the TASTE-FREE variant: the
stand-in's perception (its connector, fitted on attribute labels of population images only) and the
hand-set kernel reader (--reader kernel: beta 0.4 per shared attribute, never fitted to anyone's
choices). The images of --data are used only to calibrate the residual scales (no labels). ~1 min;
the same command writes the same bytes (sha256 636eee5d...):
  node tools/scripts/run-ts.js plugins/dataset-pickapic/src/cli.ts synth --preset population \
       --seed 7 --population-seed 42 --params '{"users":100,"shards":1}' --out data/pop100
  python research/standin/build_reader_base.py --data data/pop100 --base apps/demo/base/idefics2-small-standin \
       --perception-from apps/demo/base/idefics2-small-standin --reader kernel --out apps/demo/base/idefics2-small-kernel

Usage for the fitted stand-in (venv with torch, transformers, pandas, pyarrow, pillow; ~8 min on 2 cores):
  node tools/scripts/run-ts.js plugins/dataset-pickapic/src/cli.ts synth --preset population \
       --seed 7 --population-seed 42 --out data/population
  python research/standin/build_reader_base.py --data data/population \
       --base data/checkpoints/idefics2-small --out apps/demo/base/idefics2-small-standin
  python goldens/make_standin_golden.py --checkpoint apps/demo/base/idefics2-small-standin \
       --out apps/demo/test/fixtures/standin_golden.json
"""
import argparse
import io
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoProcessor, Idefics2Config, Idefics2ForConditionalGeneration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pretrain_base import load_comparisons, reinit  # noqa: E402

GROUPS = [("shape", 4), ("colour", 6), ("texture", 4), ("layout", 4), ("background", 3), ("style", 3)]
OFFSET = np.cumsum([0] + [n for _, n in GROUPS])[:-1]
CODE = 24                      # residual dims 0..23: an image token's attribute one-hot
IMG, CONST, LABEL, SIGN = 24, 25, 26, 27
GATHERED = 32                  # dims 32..55: the attributes of the image a text token follows
VOTE = 60                      # the reader's vote
# Layer-1 dims that carry the content match: RoPE pairs 9..14 (both halves), which turn by at most
# ~0.2 rad over a 500-token chat at rope_theta 1e6; pair 15 carries the answer gate.
CONTENT_DIMS = list(range(9, 15)) + [m + 16 for m in range(9, 15)]
RANK = len(CONTENT_DIMS)
HEAD_GROUPS = [[0, 1, 2], [3, 4, 5]]   # the kernel's groups per reading head (head 0: KV 0, head 2: KV 1)


def kernel_factors(beta):
    """U, V [2 heads, 24, RANK] with U V^T = beta * (centred one-hot identity of the head's groups):
    the score of a reference answer is beta per attribute it shares with the target (up to a
    per-target constant, which softmax ignores)."""
    U = np.zeros((2, CODE, RANK))
    for h, groups in enumerate(HEAD_GROUPS):
        r = 0
        for gi in groups:
            n = GROUPS[gi][1]
            u, s_, _ = np.linalg.svd(np.eye(n) - 1.0 / n)
            for j in range(n - 1):
                U[h, OFFSET[gi]:OFFSET[gi] + n, r] = u[:, j] * math.sqrt(s_[j] * beta)
                r += 1
    return U, U.copy()


def fit_reader(df, truth, U, V, a):
    """Fit the reading heads' bilinear forms on OTHER people's comparisons (synthpick population),
    through an exact small model of the hand-set circuit: per head, softmax over the reference
    answers of (target code) U V^T (reference code), times the answers' signs, summed over heads;
    z+ - z- = 2 gamma vote. Loss: the liked candidate's vote above the disliked one's (logistic).
    Codes are the images' true attributes (what the fitted perception reads, 98-100%)."""
    code = {}
    for uid, vals in truth.items():
        v = np.zeros(CODE, dtype=np.float32)
        v[OFFSET + np.array(vals)] = 1.0
        code[uid] = v
    hist = {}
    for r in df.itertuples(index=False):
        liked, disliked = (r.image_0_uid, r.image_1_uid) if r.label_0 == 1.0 else (r.image_1_uid, r.image_0_uid)
        hist.setdefault(r.user_id, []).append((code[liked], code[disliked]))
    users = sorted(hist)
    held = users[-a.holdout_users:]
    train = [u for u in users if u not in set(held)]
    rng = np.random.default_rng(a.seed)

    def batch(pool, n, k):
        tl, td, refs, signs = [], [], [], []
        for _ in range(n):
            u = pool[rng.integers(len(pool))]
            h = hist[u]
            i = rng.integers(len(h))
            others = [j for j in range(len(h)) if j != i]
            pick = rng.choice(others, size=min(k, len(others)), replace=False)
            pick = np.resize(pick, k)  # users with fewer comparisons repeat references
            tl.append(h[i][0])
            td.append(h[i][1])
            refs.append(np.stack([h[j][0] for j in pick] + [h[j][1] for j in pick]))
            signs.append(np.array([1.0] * k + [-1.0] * k, dtype=np.float32))
        return (torch.tensor(np.stack(x)) for x in (tl, td, refs, signs))

    Ut = torch.tensor(U, dtype=torch.float32, requires_grad=True)
    Vt = torch.tensor(V, dtype=torch.float32, requires_grad=True)

    def vote(t, refs, signs):
        total = 0.0
        for h in range(2):
            sc = torch.einsum("bc,cr,bkd,dr->bk", t, Ut[h], refs, Vt[h])
            total = total + (torch.softmax(sc, 1) * signs).sum(1)
        return total

    held_batch = list(batch(held, 3000, 8))

    def held_accuracy():
        with torch.no_grad():
            tl, td, refs, signs = held_batch
            dv = vote(tl, refs, signs) - vote(td, refs, signs)
            return float(((dv > 0).float() + 0.5 * (dv == 0).float()).mean())

    print(f"reader fit: kernel start, held-out accuracy with 8 pairs {held_accuracy():.4f} (3000 draws, {len(held)} people)", flush=True)
    opt = torch.optim.Adam([Ut, Vt], lr=a.fit_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s_: 1 - s_ / a.fit_steps)
    for step in range(1, a.fit_steps + 1):
        tl, td, refs, signs = batch(train, 512, int(rng.integers(1, 9)))
        dv = vote(tl, refs, signs) - vote(td, refs, signs)
        loss = F.softplus(-2 * a.gamma * dv).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0 or step == a.fit_steps:
            print(f"reader fit step {step}: loss {loss.item():.4f}, held-out accuracy with 8 pairs {held_accuracy():.4f}", flush=True)
    return Ut.detach().numpy(), Vt.detach().numpy(), held_accuracy()


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="synthpick population parquet + synthpick-truth.json (with images)")
    p.add_argument("--base", required=True, help="the random small checkpoint (its vision tower is kept)")
    p.add_argument("--out", required=True)
    p.add_argument("--rope-theta", type=float, default=1e6)
    p.add_argument("--perception-steps", type=int, default=1500)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--beta", type=float, default=0.4, help="kernel sharpness per shared attribute")
    p.add_argument("--gamma", type=float, default=3.0, help="logit per unit of vote")
    p.add_argument("--recency", type=float, default=1.5, help="layer-0 gather: score lost per token of distance")
    p.add_argument("--perception-from", default="",
                   help="a checkpoint this script wrote: take its connector instead of fitting one (reader sweeps)")
    p.add_argument("--reader", choices=["kernel", "fitted"], default="fitted",
                   help="kernel: beta per shared attribute (knows no taste); fitted: that, then fitted on other people")
    p.add_argument("--fit-steps", type=int, default=4000)
    p.add_argument("--fit-lr", type=float, default=0.01)
    p.add_argument("--holdout-users", type=int, default=40, help="last population users by id: reader-fit validation only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args()


def main():
    a = parse()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    proc = AutoProcessor.from_pretrained(a.base)
    src = Idefics2ForConditionalGeneration.from_pretrained(a.base, dtype=torch.float32)
    cfg = Idefics2Config.from_pretrained(a.base)
    tc = cfg.text_config
    if getattr(tc, "rope_parameters", None) is not None:
        tc.rope_parameters["rope_theta"] = a.rope_theta
    else:
        tc.rope_theta = a.rope_theta
    model = Idefics2ForConditionalGeneration(cfg)
    model.load_state_dict(src.state_dict())
    del src
    d, heads, kv, hd = tc.hidden_size, tc.num_attention_heads, tc.num_key_value_heads, tc.hidden_size // tc.num_attention_heads
    assert (d, heads, kv, hd, tc.num_hidden_layers) == (128, 4, 2, 32, 2), "the construction is for the small preset"
    n_lat = cfg.perceiver_config.resampler_n_latents
    reinit(model, a.seed)

    # ---- perception: fit the connector on population images --------------------------------
    df = load_comparisons(a.data)
    with open(os.path.join(a.data, "synthpick-truth.json")) as f:
        truth = json.load(f)["images"]
    blobs = {}
    for side in (0, 1):
        for uid, jpg in zip(df[f"image_{side}_uid"], df[f"jpg_{side}"]):
            blobs.setdefault(uid, jpg)
    uids = sorted(blobs)
    attrs = torch.tensor([truth[u] for u in uids], dtype=torch.long)
    vm = model.model.vision_model
    vm.eval()
    feats = []
    t0 = time.time()
    with torch.no_grad():
        for s in range(0, len(uids), 256):
            ims = [Image.open(io.BytesIO(blobs[u])).convert("RGB") for u in uids[s:s + 256]]
            pv = proc.image_processor([[im] for im in ims], return_tensors="pt", do_image_splitting=False)["pixel_values"][:, 0]
            feats.append(vm(pixel_values=pv).last_hidden_state)
    feats = torch.cat(feats)
    print(f"vision features of {len(uids)} population images in {time.time() - t0:.0f}s", flush=True)
    target = torch.zeros(len(uids), d)
    target[torch.arange(len(uids))[:, None], torch.tensor(OFFSET)[None, :] + attrs] = 1.0
    target[:, IMG] = 1.0
    held = torch.arange(len(uids)) % 10 == 0
    conn = model.model.connector
    for p_ in model.parameters():
        p_.requires_grad_(False)
    for p_ in conn.parameters():
        p_.requires_grad_(True)
    opt = torch.optim.AdamW(conn.parameters(), lr=a.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / a.perception_steps))
    train_rows = torch.nonzero(~held)[:, 0]
    g = torch.Generator().manual_seed(a.seed)

    def connect(rows):
        return conn(feats[rows], attention_mask=torch.ones(len(rows), feats.shape[1], dtype=torch.bool))

    def perception_report():
        with torch.no_grad():
            rows = torch.nonzero(held)[:, 0]
            out = torch.cat([connect(rows[s:s + 512]) for s in range(0, len(rows), 512)])
            acc = {}
            for gi, (name, n) in enumerate(GROUPS):
                pred = out[:, :, OFFSET[gi]:OFFSET[gi] + n].argmax(-1)
                acc[name] = round(float((pred == attrs[rows, gi][:, None]).float().mean()), 4)
            mse = float(((out - target[rows][:, None, :]) ** 2).mean())
        return acc, mse

    if a.perception_from:
        other = Idefics2ForConditionalGeneration.from_pretrained(a.perception_from, dtype=torch.float32)
        conn.load_state_dict(other.model.connector.state_dict())
        del other
    for step in range(1, 0 if a.perception_from else a.perception_steps + 1):
        rows = train_rows[torch.randint(len(train_rows), (128,), generator=g)]
        out = connect(rows)
        loss = ((out - target[rows][:, None, :]) ** 2).mean() * d
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == a.perception_steps:
            acc, mse = perception_report()
            print(f"perception step {step}: loss {loss.item():.4f}, held-out images: per-token accuracy {acc}, mse {mse:.4f}", flush=True)
    for p_ in conn.parameters():
        p_.requires_grad_(False)
    perception, _ = perception_report()
    U, V = kernel_factors(a.beta)
    reader_held_out = None
    if a.reader == "fitted":
        U, V, reader_held_out = fit_reader(df, truth, U, V, a)

    # ---- the reader, set by hand ---------------------------------------------------------------
    tok = proc.tokenizer
    plus, minus = tok.convert_tokens_to_ids("\u2581+"), tok.convert_tokens_to_ids("\u2581-")
    tm = model.model.text_model
    theta = a.rope_theta
    w = theta ** (-np.arange(hd // 2) * 2 / hd)
    with torch.no_grad():
        emb = torch.zeros_like(tm.embed_tokens.weight)
        emb[:, CONST] = 1.0
        emb[plus, LABEL], emb[plus, SIGN] = 1.0, 1.0
        emb[minus, LABEL], emb[minus, SIGN] = 1.0, -1.0
        tm.embed_tokens.weight.copy_(emb)
        for layer in tm.layers:
            layer.input_layernorm.weight.fill_(1.0)
            layer.post_attention_layernorm.weight.fill_(1.0)
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.self_attn.o_proj, layer.mlp.down_proj):
                proj.weight.zero_()
        tm.norm.weight.fill_(1.0)

        # Normalised magnitudes the projections see (RMSNorm of the residual at layer 0).
        sample = connect(torch.arange(0, len(uids), max(1, len(uids) // 512)))
        xi = float((sample[..., IMG] / sample.pow(2).mean(-1).sqrt()).mean())       # image flag, image tokens
        xc_label = 1.0 / math.sqrt(3 / d)                                            # C at "+"/"-"
        code_norm = float((sample[..., :CODE].max(-1).values / sample.pow(2).mean(-1).sqrt()).mean())
        sq = math.sqrt(hd)

        # Layer 0, head 0 (KV head 0): gather the nearest image.
        L0 = tm.layers[0].self_attn
        G = 40.0
        L0.q_proj.weight[15, CONST] = 1.0
        L0.k_proj.weight[15, IMG] = G * sq / (xc_label * xi)
        L0.q_proj.weight[8, CONST] = 1.0
        L0.k_proj.weight[8 + 16, IMG] = -a.recency * sq / (w[8] * xc_label * xi)
        for c in range(CODE):
            L0.v_proj.weight[c, c] = 1.0 / code_norm
            L0.o_proj.weight[GATHERED + c, c] = 1.0
        # Layer 1, heads 0 and 2 (KV heads 0 and 1): the reader, scores from the factors U, V.
        L1 = tm.layers[1].self_attn
        # Normalised scales at layer 1: "+" carries C, L, S and 6 gathered ones; the final token C and 6.
        x_label = 1.0 / math.sqrt(9 / d)
        x_final = 1.0 / math.sqrt(7 / d)
        scale = math.sqrt(sq / (x_final * x_label))
        for kvh, qh in enumerate((0, 2)):
            for r in range(RANK):
                for c in range(CODE):
                    L1.q_proj.weight[qh * hd + CONTENT_DIMS[r], GATHERED + c] = scale * float(U[kvh, c, r])
                    L1.k_proj.weight[kvh * hd + CONTENT_DIMS[r], GATHERED + c] = scale * float(V[kvh, c, r])
            L1.q_proj.weight[qh * hd + 15, CONST] = 1.0
            L1.k_proj.weight[kvh * hd + 15, LABEL] = 30.0 * sq / (x_final * x_label)
            L1.v_proj.weight[kvh * hd + 0, SIGN] = 1.0 / x_label
            L1.o_proj.weight[VOTE, qh * hd + 0] = 1.0
        # lm_head: +/- from the vote, every other token far below.
        lm = torch.zeros_like(model.lm_head.weight)
        lm[plus, VOTE] = a.gamma * math.sqrt(7 / d)
        lm[minus, VOTE] = -a.gamma * math.sqrt(7 / d)
        others = [t for t in range(lm.shape[0]) if t not in (plus, minus)]
        lm[others, CONST] = -12.0 * math.sqrt(7 / d)
        model.lm_head.weight.copy_(lm)
    for p_ in model.parameters():
        p_.requires_grad_(True)
    for p_ in model.model.vision_model.parameters():
        p_.requires_grad_(False)

    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out, safe_serialization=True)
    proc.save_pretrained(a.out)
    with open(os.path.join(a.out, "standin.json"), "w") as f:
        json.dump({"script": "research/standin/build_reader_base.py", "args": vars(a),
                   "perception_held_out_token_accuracy": perception,
                   "reader_fit_held_out_accuracy_8_pairs": reader_held_out,
                   "normalised_scales": {"image_flag": xi, "code": code_norm}}, f, indent=2)
    print(f"written {a.out}", flush=True)


if __name__ == "__main__":
    main()
