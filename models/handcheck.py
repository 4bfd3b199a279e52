"""A small learned "is this a hand radiograph" check, trained on real images.

Training data: MedNIST (CC BY-SA 4.0, Dr. Bradley J. Erickson, Mayo Clinic; source collections
RSNA, NIH, TCIA): 10,000 PA hand radiographs of the RSNA bone-age set against chest
radiographs, abdomen/chest/head CT and breast MRI, all 64x64. MedNIST has no wrist, knee or
ankle radiographs, so the check is also validated on pydicom-data's ankle CR (RG3), and its
card says so. Our procedural phantoms are added to the positives (they are what the demo
pipeline sees); that is stated in the card too.

The input is the same MONAI inference transform as the bone-age network's, at 64 px, so a
radiograph is windowed, padded and resized exactly as the training images were.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from models.card import file_sha256
from models.transforms import InferenceTransform

INPUT_SIZE = 64
WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "model.json"


class HandNet(nn.Module):
    """Four conv blocks and a logit: about 70 k parameters, well under a millisecond."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for width in (16, 32, 64, 64):
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image).mean(dim=(2, 3))).squeeze(1)


@dataclass
class HandCheckCard:
    version: str
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""


class HandCheck:
    """Load once; `probability(pixels)` for a 2-D float32 image in [0, 1], bone bright."""

    def __init__(self, net: HandNet, card: HandCheckCard) -> None:
        self.net = net.eval()
        self.card = card
        self.transform = InferenceTransform(INPUT_SIZE)

    @classmethod
    def from_dir(cls, directory: Path) -> HandCheck:
        card = HandCheckCard(**json.loads((directory / CARD_FILE).read_text()))
        actual = file_sha256(directory / WEIGHTS_FILE)
        if actual != card.weights_sha256:
            raise ValueError(f"{directory}: weights hash {actual[:12]} does not match its card")
        net = HandNet()
        net.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        return cls(net, card)

    @torch.inference_mode()
    def probability(self, pixels: np.ndarray) -> float:
        image, _ = self.transform(pixels)
        return float(torch.sigmoid(self.net(image[None]))[0])


def save_handcheck(directory: Path, net: HandNet, card: HandCheckCard) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()},
              str(directory / WEIGHTS_FILE))
    card.weights_sha256 = file_sha256(directory / WEIGHTS_FILE)
    (directory / CARD_FILE).write_text(json.dumps(asdict(card), indent=2) + "\n")
