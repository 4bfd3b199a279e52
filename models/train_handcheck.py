"""Train the hand check on MedNIST (+ phantoms) and validate it on real outside images.

    .venv/bin/python -m models.train_handcheck --mednist DIR --out models/weights/hand-check \
        [--real-hands DIR] [--negatives FILE ...]

MedNIST files that repeat (byte-identical, inside AbdomenCT and HeadCT) are dropped before the
split. The card records held-out MedNIST accuracy and the probability given to every real
validation image named on the command line.
"""

from __future__ import annotations

import argparse
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.datasets import read_image_file
from models.handcheck import INPUT_SIZE, HandCheck, HandCheckCard, HandNet, save_handcheck
from models.phantom import render
from models.transforms import InferenceTransform

NEGATIVE_CAP = 4000  # per MedNIST class, so hands are about half of the training set


def load_mednist(root: Path, seed: int) -> tuple[list[np.ndarray], list[int], dict[str, int]]:
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    images, labels, counts = [], [], {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.jpeg"))
        rng.shuffle(files)
        kept = 0
        for path in files:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            if folder.name != "Hand" and kept >= NEGATIVE_CAP:
                break
            images.append(read_image_file(path))
            labels.append(int(folder.name == "Hand"))
            kept += 1
        counts[folder.name] = kept
    return images, labels, counts


def phantom_images(count: int, seed: int) -> list[np.ndarray]:
    out = []
    for index in range(count):
        age = float(np.random.default_rng(seed + index).uniform(1, 228))
        phantom = render(age, index % 2 == 0, seed + index, size=256)
        pixels = phantom.pixels.astype(np.float32) / 4095
        out.append(1 - pixels if phantom.photometric == "MONOCHROME1" else pixels)
    return out


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Rotation up to 25 degrees, scale 0.8-1.2, shifts, gamma: poses and exposures vary."""
    n = batch.shape[0]
    angle = (torch.rand(n, generator=generator) - 0.5) * np.deg2rad(50)
    scale = 0.8 + 0.4 * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    moved = F.grid_sample(batch, grid, padding_mode="zeros", align_corners=False)
    gamma = torch.exp((torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.8)
    return moved.clamp(0, 1) ** gamma


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mednist", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--real-hands", type=Path)
    parser.add_argument("--negatives", type=Path, nargs="*", default=[])
    parser.add_argument("--phantoms", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    images, labels, counts = load_mednist(args.mednist, args.seed)
    images += phantom_images(args.phantoms, 10_000 + args.seed)
    labels += [1] * args.phantoms
    transform = InferenceTransform(INPUT_SIZE)
    tensors = torch.stack([transform(image)[0] for image in images])
    targets = torch.tensor(labels, dtype=torch.float32)
    order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(args.seed))
    n_val = len(order) // 10
    val, train = order[:n_val], order[n_val:]

    net = HandNet()
    optimiser = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        net.train()
        shuffled = train[torch.randperm(len(train), generator=generator)]
        for start in range(0, len(shuffled), 128):
            index = shuffled[start:start + 128]
            logits = net(augment(tensors[index], generator))
            loss = F.binary_cross_entropy_with_logits(logits, targets[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        net.eval()
        with torch.no_grad():
            predicted = torch.cat([net(tensors[val[s:s + 512]]) for s in range(0, n_val, 512)])
        accuracy = float(((predicted > 0) == (targets[val] > 0.5)).float().mean())
        print(f"epoch {epoch + 1}: loss {float(loss):.4f}, held-out accuracy {accuracy:.4f}")

    card = HandCheckCard(
        version="1.0.0",
        training_data={
            "mednist": "MedNIST 64x64 (CC BY-SA 4.0, credit: Dr. Bradley J. Erickson, Mayo "
                       "Clinic; source collections RSNA, NIH, TCIA); duplicates dropped",
            "mednist_counts": counts,
            "phantoms": f"{args.phantoms} procedural hand phantoms (synthetic) as positives",
            "not_covered": "MedNIST has no wrist, elbow, knee or ankle radiographs; validated "
                           "separately on pydicom-data's ankle CR (RG3)",
            "seed": args.seed,
        },
        metrics={"heldout_accuracy": round(accuracy, 4), "heldout_count": n_val,
                 "trained": datetime.now(UTC).isoformat(timespec="seconds")},
    )
    save_handcheck(args.out, net, card)
    check = HandCheck.from_dir(args.out)
    real: dict[str, float] = {}
    if args.real_hands:
        for path in sorted(args.real_hands.glob("*.png")):
            real[f"real-hand/{path.name}"] = round(check.probability(read_image_file(path)), 4)
    if args.negatives:
        from dicom_io.pixels import read_radiograph_pixels  # only this tool reads DICOM

        for path in args.negatives:
            real[f"negative/{path.name}"] = round(check.probability(
                read_radiograph_pixels(path)), 4)
    card.metrics["real_validation"] = real
    save_handcheck(args.out, net, card)
    for name, value in real.items():
        print(f"{name}: {value:.3f}")


if __name__ == "__main__":
    main()
