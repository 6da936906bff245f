"""Reference TensorBoard event files, written by tensorboardX, for packages/training's TensorBoardWriter.

Rerun (from the repository root; needs `tensorboardX` and `tensorboard` besides goldens/requirements.txt):
    pip install tensorboard tensorboardX==2.6.5
    python goldens/make_tensorboard_fixtures.py \
        --out packages/training/test/fixtures/tensorboard

Writes:
  scalars.tfevents  SummaryWriter(logdir).add_scalar(tag, value, step, walltime) for every entry of
                    `SCALARS`, the file_version header event stamped with HEADER_WALL_TIME.
  purge.tfevents    SummaryWriter(logdir, purge_step=PURGE_STEP) (what a resumed run writes), then
                    two scalars.
  tensorboard.json  the inputs above (tag, value, step, wall time; NaN/inf as strings), and what
                    tensorboard's own EventAccumulator reads back from both files (values as float32
                    widened to double; the purge file's events as (step, kind) pairs).

The header event's wall time comes from time.time() inside tensorboardX; the clock is pinned with
unittest.mock while the writer is created so the files are reproducible byte for byte. Event file
names (events.out.tfevents.<secs>.<hostname>) depend on the machine, so the files are renamed.
"""
import argparse
import json
import math
import os
import shutil
import tempfile
from unittest import mock

import tensorboardX
from tensorboardX import SummaryWriter
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto import event_pb2

HEADER_WALL_TIME = 1700000000.25
PURGE_STEP = 5

# (tag, value, step, wall_time): varint widths (0, 1, 127, 128, 2^31, 2^53 - 1, -1), float32 rounding
# (0.1, 1/3, 2^24 + 1 rounds to even, a subnormal, underflow to 0, overflow to inf), NaN and +-inf,
# -0.0, a wall time of 0 (omitted by proto3), a tag longer than 127 bytes and a non-ASCII tag.
SCALARS = [
    ("train/loss", 0.6931471805599453, 1, 1700000001.5),
    ("train/loss", 0.1, 2, 1700000002.125),
    ("train/accuracy", 1.0 / 3.0, 2, 1700000002.125),
    ("train/lr", 4.999e-05, 127, 1700000003.0),
    ("train/loss_contrastive", 16777217.0, 128, 1700000004.0),
    ("train/zero_step", -2.5, 0, 1700000005.0),
    ("train/big_step", 1e-40, 2**31, 1700000006.0),
    ("train/max_safe_step", 1e-50, 2**53 - 1, 1700000007.0),
    ("train/negative_step", -0.0, -1, 1700000008.0),
    ("train/overflow", 3.5e38, 3, 1700000009.0),
    ("train/nan", float("nan"), 4, 1700000010.0),
    ("train/inf", float("inf"), 4, 1700000010.0),
    ("train/neg_inf", float("-inf"), 4, 1700000010.0),
    ("train/zero_wall_time", 0.0, 5, 0.0),
    ("validation/" + "long_tag_" * 14 + "end", 0.75, 6, 1700000011.75),
    ("validation/précision", 0.5, 7, 1700000012.5),
]

PURGE_SCALARS = [
    ("train/loss", 0.25, PURGE_STEP, 1700000100.0),
    ("validation/accuracy", 0.875, PURGE_STEP, 1700000100.5),
]


def json_number(x):
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def write(logdir, scalars, purge_step=None):
    with mock.patch("time.time", return_value=HEADER_WALL_TIME):
        w = SummaryWriter(logdir, purge_step=purge_step, flush_secs=3600)
        w._get_file_writer()  # tensorboardX opens the file (and writes the header) lazily
    for tag, value, step, wall_time in scalars:
        w.add_scalar(tag, value, step, walltime=wall_time)
    w.close()
    (name,) = [f for f in os.listdir(logdir) if "tfevents" in f]
    return os.path.join(logdir, name)


def read_back(path):
    acc = EventAccumulator(path, size_guidance={"scalars": 0})
    acc.Reload()
    return [
        {"tag": tag, "step": e.step, "wallTime": e.wall_time, "value": json_number(e.value)}
        for tag in acc.Tags()["scalars"]
        for e in acc.Scalars(tag)
    ]


def raw_events(path):
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader

    out = []
    for raw in RawEventFileLoader(path).Load():
        ev = event_pb2.Event.FromString(raw)
        out.append({"step": ev.step, "wallTime": ev.wall_time, "kind": ev.WhichOneof("what"),
                    **({"sessionLog": ev.session_log.status} if ev.HasField("session_log") else {})})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.mkdtemp()
    try:
        scalars_file = os.path.join(args.out, "scalars.tfevents")
        purge_file = os.path.join(args.out, "purge.tfevents")
        shutil.copyfile(write(os.path.join(tmp, "a"), SCALARS), scalars_file)
        shutil.copyfile(write(os.path.join(tmp, "b"), PURGE_SCALARS, PURGE_STEP), purge_file)
        doc = {
            "generator": f"goldens/make_tensorboard_fixtures.py (tensorboardX {tensorboardX.__version__})",
            "headerWallTime": HEADER_WALL_TIME,
            "purgeStep": PURGE_STEP,
            "scalars": [{"tag": t, "value": json_number(v), "step": s, "wallTime": w} for t, v, s, w in SCALARS],
            "purgeScalars": [{"tag": t, "value": json_number(v), "step": s, "wallTime": w} for t, v, s, w in PURGE_SCALARS],
            "readBack": read_back(scalars_file),
            "purgeEvents": raw_events(purge_file),
        }
        with open(os.path.join(args.out, "tensorboard.json"), "w") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")
    finally:
        shutil.rmtree(tmp)
    for name in ("scalars.tfevents", "purge.tfevents", "tensorboard.json"):
        print(name, os.path.getsize(os.path.join(args.out, name)), "bytes")


if __name__ == "__main__":
    main()
