"""Training throughput: poisonlab's training step against a plain PyTorch loop, measured in the same run.

The reference is what a careful user writes first: the same model (``--model``), float32 NCHW contiguous
3-channel tensors prepared up front, batch 128, Adam, a Python loop over slices. poisonlab's
``train`` adds channels_last, bf16 autocast (where the CPU has it), uint8 storage and a one-cycle
schedule (augmentation off, so both loops do the same work). Both see the same images; runs alternate so
background load hits both alike. On ``--device cuda`` both loops hold the data on the GPU, the reference
with PyTorch's default cuDNN settings and poisonlab with its deterministic ones (same seed, same weights),
and both clocks stop after the GPU has finished.

    python benchmarks/train_throughput.py [--images 12800] [--repeats 3] [--dataset mnist] [--model paper-cnn]
    python benchmarks/train_throughput.py --dataset /path/to/cifar10-jpeg --model resnet18 --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from torch import nn

from poisonlab.data import load_dataset
from poisonlab.models import MODEL_NAMES, build_model
from poisonlab.training import TrainConfig, bf16_supported, train


def plain_loop(x: np.ndarray, y: np.ndarray, *, model_name: str = "paper-cnn", batch_size: int = 128,
               seed: int = 0, device: str = "cpu") -> float:
    """Images per second of the reference loop over ``x`` once (data preparation not timed)."""
    torch.manual_seed(seed)
    xs = torch.from_numpy(x.astype(np.float32) / 255.0).expand(-1, 3, -1, -1).contiguous().to(device)
    ys = torch.from_numpy(y.astype(np.int64)).to(device)
    model = build_model(model_name, in_channels=3, image_size=x.shape[-1], num_classes=int(y.max()) + 1).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    start = time.perf_counter()
    for i in range(0, len(xs), batch_size):
        loss = loss_fn(model(xs[i:i + batch_size]), ys[i:i + batch_size])
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return len(xs) / (time.perf_counter() - start)


def ours(x: np.ndarray, y: np.ndarray, *, model_name: str = "paper-cnn", batch_size: int = 128, seed: int = 0,
         precision: str = "auto", device: str = "cpu") -> float:
    cfg = TrainConfig(epochs=1, batch_size=batch_size, seed=seed, precision=precision, model=model_name,
                      augment="none", device=device)
    return train(x, y, num_classes=int(y.max()) + 1, config=cfg, progress=False).images_per_second


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--images", type=int, default=12800, help="training images per timed run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="paper-cnn", choices=MODEL_NAMES)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    ds = load_dataset(args.dataset)
    x, y = ds.x_train[: args.images], ds.y_train[: args.images]
    m, device = args.model, args.device
    plain_loop(x[:1280], y[:1280], model_name=m, device=device)  # warm-up: allocator, kernel caches
    ours(x[:1280], y[:1280], model_name=m, device=device)
    rows: dict[str, list[float]] = {"plain fp32 NCHW": [], "poisonlab fp32": [], "poisonlab (auto)": []}
    for _ in range(args.repeats):
        rows["plain fp32 NCHW"].append(plain_loop(x, y, model_name=m, device=device))
        rows["poisonlab fp32"].append(ours(x, y, model_name=m, precision="fp32", device=device))
        rows["poisonlab (auto)"].append(ours(x, y, model_name=m, precision="auto", device=device))
    base = statistics.median(rows["plain fp32 NCHW"])
    where = torch.cuda.get_device_name() if device == "cuda" else f"{torch.get_num_threads()} threads, bf16 kernels: " \
        f"{bf16_supported()}"
    print(f"{m} on {ds.name}: torch {torch.__version__}, {where}, {len(x)} images x {args.repeats} repeats, batch 128")
    print(f"{'loop':<20} {'images/s (median)':>18} {'ratio':>7}")
    for name, values in rows.items():
        med = statistics.median(values)
        print(f"{name:<20} {med:>18.0f} {med / base:>6.2f}x")
    print(f"ratio poisonlab/plain: {statistics.median(rows['poisonlab (auto)']) / base:.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"model": m, "dataset": ds.name, "device": device, "where": where, "images": len(x),
                       "images_per_second": {k: statistics.median(v) for k, v in rows.items()},
                       "ratio": statistics.median(rows["poisonlab (auto)"]) / base}, f, indent=1)


if __name__ == "__main__":
    main()
