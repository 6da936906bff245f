"""RESEARCH: are a checkpoint's images perceived? Linear probes of the six synthpick attributes
(truth sidecar) from (a) the frozen vision tower's mean features and (b) the connector's output
(its 16 latents, concatenated), on the first 3000 distinct images of the set's first shard; 80/20
split, test accuracy per attribute.

  python research/standin/probe_attributes.py <checkpoint dir> <synthpick dir with synthpick-truth.json>
"""
import io, json, glob, os, sys, random
import numpy as np, pandas as pd, torch, torch.nn.functional as F
from PIL import Image
from transformers import AutoProcessor, Idefics2ForConditionalGeneration
torch.set_num_threads(1)
ckpt, data = sys.argv[1], sys.argv[2]
proc = AutoProcessor.from_pretrained(ckpt)
model = Idefics2ForConditionalGeneration.from_pretrained(ckpt, dtype=torch.float32).eval()
truth = json.load(open(os.path.join(data, "synthpick-truth.json")))
df = pd.read_parquet(sorted(glob.glob(os.path.join(data, "*.parquet")))[0], columns=["image_0_uid", "jpg_0"]).drop_duplicates("image_0_uid").head(3000)
attrs = np.array([truth["images"][u] for u in df.image_0_uid])
with torch.no_grad():
    V, C = [], []
    for s in range(0, len(df), 200):
        ims = [Image.open(io.BytesIO(b)).convert("RGB") for b in df.jpg_0.iloc[s:s+200]]
        pv = proc.image_processor([[im] for im in ims], return_tensors="pt", do_image_splitting=False)["pixel_values"][:, 0]
        v = model.model.vision_model(pixel_values=pv).last_hidden_state
        c = model.model.connector(v, attention_mask=torch.ones(v.shape[0], v.shape[1], dtype=torch.bool))
        V.append(v.mean(1)); C.append(c.reshape(c.shape[0], -1))
    V, C = torch.cat(V), torch.cat(C)
names = list(truth["attributes"].keys())
def probe(X):
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    n = len(X); tr = slice(0, int(0.8 * n)); te = slice(int(0.8 * n), n)
    out = {}
    for g, name in enumerate(names):
        y = torch.tensor(attrs[:, g]); k = int(y.max()) + 1
        W = torch.zeros(X.shape[1], k, requires_grad=True); b = torch.zeros(k, requires_grad=True)
        opt = torch.optim.Adam([W, b], lr=0.01)
        for _ in range(300):
            opt.zero_grad(); loss = F.cross_entropy(X[tr] @ W + b, y[tr]) + 1e-3 * (W ** 2).sum(); loss.backward(); opt.step()
        out[name] = round(float(((X[te] @ W + b).argmax(1) == y[te]).float().mean()), 3)
    return out
print("vision mean", probe(V))
print("connector (latents)", probe(C))
