"""Train the hand check on MedNIST (+ phantoms) and validate it on real outside images.

    boneage train-handcheck --mednist DIR --out models/weights/hand-check \
        [--rsna ../shared/data/rsna-299] [--real-hands DIR] [--negatives FILE ...]

(`python -m models.train_handcheck` takes the same options but reads negatives as PNG/JPEG
only: this module reads no DICOM; the `boneage` command hands it a DICOM reader.)

MedNIST's hands are all 64 px thumbnails; real RSNA hands at 299 px from the training part of
the bone-age network's fixed split are added as positives, so that the check sees real
exposures, collimation and markers at more than one scale. The split's held-out parts stay
out, so the gate can be measured on hands it never saw (`bench/gates.py`).

MedNIST files that repeat (byte-identical, inside AbdomenCT and HeadCT) are dropped before the
split. The card records held-out MedNIST accuracy and the probability given to every real
validation image named on the command line.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Callable
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


def rsna_training_hands(folder: Path, count: int) -> list[np.ndarray]:
    from models.datasets import rsna_samples
    from models.splits import stratified_split

    samples = rsna_samples(folder, folder / "labels.csv")
    train = stratified_split(samples, 1200, 1000, 0).train
    picked = stratified_split(train, min(count, len(train) - 1), 0, 0).val
    return [as_mednist(s.pixels()) for s in picked]


def as_mednist(pixels: np.ndarray) -> np.ndarray:
    """A 299-px hand brought to MedNIST's form: 64 x 64, JPEG at quality 90 (MedNIST's
    quantisation tables). Every negative is a MedNIST thumbnail; hands in another form would
    let the check learn "not a 64-px JPEG" instead of "a hand" (a first try without this
    called pydicom-data's ankle CR and CT slice hands at 0.97-0.999)."""
    import io

    from PIL import Image

    image = Image.fromarray(np.rint(pixels * 255).astype(np.uint8)).resize(
        (64, 64), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return read_image_file(io.BytesIO(buffer.getvalue()))  # type: ignore[arg-type]


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


def main(argv: list[str] | None = None,
         read_pixels: Callable[[Path], np.ndarray] = read_image_file) -> None:
    """`read_pixels` turns a negative's file into [0, 1] pixels, bone bright."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mednist", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--real-hands", type=Path)
    parser.add_argument("--negatives", type=Path, nargs="*", default=[])
    parser.add_argument("--rsna", type=Path, help="RSNA-layout folder of real hands")
    parser.add_argument("--rsna-count", type=int, default=4000)
    parser.add_argument("--phantoms", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    images, labels, counts = load_mednist(args.mednist, args.seed)
    images += phantom_images(args.phantoms, 10_000 + args.seed)
    labels += [1] * args.phantoms
    rsna_note = "none"
    if args.rsna:
        hands = rsna_training_hands(args.rsna, args.rsna_count)
        images += hands
        labels += [1] * len(hands)
        counts["RSNA-299 hands"] = len(hands)
        rsna_note = (f"{len(hands)} real RSNA 2017 training hands at 299 px (research use; "
                     "Halabi et al., Radiology 2019), from the training part of the fixed "
                     "split (models.splits, seed 0, 1200 val / 1000 calibration held out), "
                     "brought to MedNIST's form (64 px, JPEG quality 90)")
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
        version="1.1.0",
        training_data={
            "mednist": "MedNIST 64x64 (CC BY-SA 4.0, credit: Dr. Bradley J. Erickson, Mayo "
                       "Clinic; source collections RSNA, NIH, TCIA); duplicates dropped",
            "mednist_counts": counts,
            "phantoms": f"{args.phantoms} procedural hand phantoms (synthetic) as positives",
            "rsna": rsna_note,
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
        for path in args.negatives:
            real[f"negative/{path.name}"] = round(check.probability(read_pixels(path)), 4)
    card.metrics["real_validation"] = real
    save_handcheck(args.out, net, card)
    for name, value in real.items():
        print(f"{name}: {value:.3f}")


if __name__ == "__main__":
    main()
