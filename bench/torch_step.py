"""PyTorch like-for-like of `npm run bench -- train` (optional: only runs where a Python with torch,
transformers and peft is named by USERPREF_TORCH_PYTHON; CI never needs it).

The original code's algorithm on the same checkpoint and the same token ids: every example is two
full sequences (liked and disliked target), each re-encoding its 17 images through the vision
tower; transformers' Idefics2ForConditionalGeneration (sdpa attention) with PEFT LoRA as the paper
configures it (r 8, alpha 8, dropout 0.1, the paper's target regex), float32.

    python bench/torch_step.py --request REQUEST.json
REQUEST.json (written by bench/model.bench-section.ts): {"checkpoint": dir, "inputIds": [T],
"images": 17, "imageSize": S, "readout": id, "trainExamples": n, "evalExamples": m, "evalBatch": k,
"threads": t}. Prints one JSON line: trainMsPerExample, evalPairsPerSecond (wall and CPU).
"""
import argparse
import json
import os
import resource
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import Idefics2ForConditionalGeneration

TARGET = ".*(text_model|modality_projection|perceiver_resampler).*(down_proj|gate_proj|up_proj|k_proj|q_proj|v_proj|o_proj).*$"


def cpu_s():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--request", required=True)
    a = ap.parse_args()
    req = json.load(open(a.request))
    torch.set_num_threads(int(req.get("threads", os.cpu_count())))
    torch.manual_seed(0)
    model = Idefics2ForConditionalGeneration.from_pretrained(req["checkpoint"], dtype=torch.float32, attn_implementation="sdpa")
    cfg = LoraConfig(r=8, lora_alpha=8, lora_dropout=0.1, init_lora_weights="gaussian", target_modules=TARGET, bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, cfg)
    ids = torch.tensor(req["inputIds"], dtype=torch.long)
    T = ids.shape[0]
    n_img, S, pos = req["images"], req["imageSize"], req["readout"]

    def batch(n_examples, seed):
        g = torch.Generator().manual_seed(seed)
        # liked and disliked sequence of each example: same ids, different target image.
        B = 2 * n_examples
        return dict(
            input_ids=ids.unsqueeze(0).repeat(B, 1),
            attention_mask=torch.ones(B, T, dtype=torch.long),
            pixel_values=torch.rand(B, n_img, 3, S, S, generator=g) * 2 - 1,
            pixel_attention_mask=torch.ones(B, n_img, S, S, dtype=torch.long),
        )

    def train_step(seed):
        model.train()
        out = model(**batch(1, seed))
        z = out.logits[:, -1, pos]
        loss = z[1] - z[0]
        loss.backward()
        model.zero_grad(set_to_none=True)

    def eval_step(n, seed):
        model.eval()
        with torch.no_grad():
            out = model(**batch(n, seed))
            return out.logits[:, -1, pos].sum().item()

    n_train = req["trainExamples"]
    for i in range(n_train):
        train_step(i)  # warm-up epoch, as the tfjs bench
    w, c = time.perf_counter(), cpu_s()
    for i in range(n_train):
        train_step(100 + i)
    train_wall = (time.perf_counter() - w) / n_train
    train_cpu = (cpu_s() - c) / n_train
    n_eval, eb = req["evalExamples"], req["evalBatch"]
    for i in range(0, n_eval, eb):
        eval_step(min(eb, n_eval - i), 200 + i)
    w, c = time.perf_counter(), cpu_s()
    for i in range(0, n_eval, eb):
        eval_step(min(eb, n_eval - i), 300 + i)
    eval_wall = time.perf_counter() - w
    eval_cpu = cpu_s() - c
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "tokensPerSequence": T,
        "trainMsPerExample": train_wall * 1000,
        "trainCpuMsPerExample": train_cpu * 1000,
        "evalPairsPerSecond": n_eval / eval_wall,
        "evalCpuPairsPerSecond": n_eval / eval_cpu,
        "peakRssMb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
