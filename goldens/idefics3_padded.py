"""What the Idefics3 variant goldens (make_idefics3_llama3_rope_goldens.py,
make_idefics3_bias_goldens.py) share: idefics3-tiny's padded batch re-encoded by transformers'
processor (its ids checked against idefics3-tiny's golden), and last-position logits of a batch
and of each sequence alone. Not a script: imported by those two.
"""
import json
import pathlib

import torch
from PIL import Image
from transformers import Idefics3ForConditionalGeneration, Idefics3Processor
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIX = ROOT / "plugins/backbone-idefics3/test/fixtures"
BASE = FIX / "idefics3-tiny"


def floats(t):
    return [float(x) for x in t.flatten()]


def last_logits(model, inputs):
    with torch.no_grad():
        out = model(**inputs)
    last = inputs["attention_mask"].sum(1) - 1
    return torch.stack([out.logits[b, last[b]] for b in range(len(last))])


class PaddedBatch:
    """idefics3-tiny's golden padded batch: its golden entry `g`, the processor, the images and `enc`."""

    def __init__(self):
        self.base_golden = json.loads((FIX / "goldens" / "idefics3-tiny.json").read_text())
        self.proc = Idefics3Processor.from_pretrained(BASE)
        keep = ("size", "max_image_size", "do_image_splitting", "resample", "image_mean", "image_std")
        self.proc.image_processor = Idefics3ImageProcessorPil(**{k: v for k, v in self.proc.image_processor.to_dict().items() if k in keep})
        self.images = [Image.open(FIX / "images" / f"image{i}.png").convert("RGB") for i in range(len(self.base_golden["image_sizes"]))]
        self.g = self.base_golden["padded"]
        self.enc = self.proc(text=self.g["texts"], images=[[self.images[k] for k in l] for l in self.g["images"]], padding=True, return_tensors="pt")
        ids = [row[m.bool()].tolist() for row, m in zip(self.enc["input_ids"], self.enc["attention_mask"])]
        assert ids == self.g["input_ids"], "the processor no longer gives idefics3-tiny's golden ids"
        self.ids = ids

    def last_index(self):
        return [int(x) for x in self.enc["attention_mask"].sum(1) - 1]

    def alone(self, model):
        """Each sequence's last-position logits with the sequence alone (no padding)."""
        return [last_logits(model, self.proc(text=[t], images=[[self.images[k] for k in l]], return_tensors="pt"))[0] for t, l in zip(self.g["texts"], self.g["images"])]

    def measure(self, model):
        """The padded entry of a variant's golden (ids, last-position logits, each sequence alone), the
        logits of idefics3-tiny itself on the same batch, and the variant's max relative change from
        them; the padded-vs-alone gap is printed with `name`."""
        logits = last_logits(model, self.enc)
        alone = self.alone(model)
        plain = Idefics3ForConditionalGeneration.from_pretrained(BASE, dtype=torch.float32, attn_implementation="eager").eval()
        logits_plain = last_logits(plain, self.enc)
        change = float((logits - logits_plain).abs().max() / logits.abs().max())
        pad_diff = max(float((logits[b] - alone[b]).abs().max()) for b in range(len(alone)))
        g = self.g
        entry = {"images": g["images"], "input_ids": g["input_ids"], "pad_token_id": g["pad_token_id"], "last_index": self.last_index(),
                 "logits": [floats(r) for r in logits], "logits_unpadded": [floats(r) for r in alone]}
        return entry, logits_plain, change, pad_diff
