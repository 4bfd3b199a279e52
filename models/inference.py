"""The inference API the pipeline uses: load a model directory once, predict batches.

A `Predictor` holds no process-wide state and opens nothing at import, so a Celery prefork
worker can create one after the fork. Heatmaps (Grad-CAM) are not produced yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.card import ModelCard, load_model_dir
from models.heads import STAGE_NAMES, confidence_tier, interval, stage_of
from models.registry import BoneAgeNet
from models.transforms import make_transforms


@dataclass(frozen=True)
class Prediction:
    """DESIGN.md's Prediction, less the heatmap (Grad-CAM is a later step)."""

    bone_age_months: float
    interval_95: tuple[float, float] | None  # from the distribution head, when there is one
    stage: str
    stage_probability: float | None  # from the stage head, when there is one
    confidence: str | None
    model_name: str
    model_version: str
    weights_sha256: str
    synthetic: bool
    warning: str | None


class Predictor:
    def __init__(self, net: BoneAgeNet, card: ModelCard, device: torch.device | str = "cpu"):
        self.net = net.to(device).eval()
        self.card = card
        self.device = torch.device(device)
        self.transform = make_transforms(net.config.input_size, train=False)

    @classmethod
    def from_dir(cls, directory: Path, device: torch.device | str = "cpu") -> Predictor:
        net, card = load_model_dir(directory, device)
        return cls(net, card, device)

    @torch.inference_mode()
    def predict(self, images: Sequence[np.ndarray], males: Sequence[bool]) -> list[Prediction]:
        """`images`: 2-D float32 arrays in [0, 1], bone bright; `males`: sex per image.

        The stage reported is the bucket of the predicted age, with the stage head's
        probability for that bucket: a low value there is the heads disagreeing.
        """
        batch = torch.stack([torch.as_tensor(self.transform(image)) for image in images])
        sex = torch.tensor([1.0 if male else 0.0 for male in males])
        out = self.net(batch.to(self.device), sex.to(self.device))
        ages = out["age"].float().cpu()
        bounds = interval(out["age_probs"].cpu()) if "age_probs" in out else None
        stage_probs = torch.softmax(out["stage_logits"].cpu(), dim=1) if "stage_logits" in out \
            else None
        predictions = []
        for index, age in enumerate(ages.tolist()):
            stage_index = int(stage_of(torch.tensor([age]))[0])
            probability = float(stage_probs[index, stage_index]) if stage_probs is not None \
                else None
            pair = None if bounds is None else (float(bounds[index, 0]), float(bounds[index, 1]))
            width = None if pair is None else pair[1] - pair[0]
            predictions.append(Prediction(
                bone_age_months=float(age),
                interval_95=pair,
                stage=STAGE_NAMES[stage_index],
                stage_probability=probability,
                confidence=None if probability is None else confidence_tier(probability, width),
                model_name=self.card.name,
                model_version=self.card.version,
                weights_sha256=self.card.weights_sha256,
                synthetic=self.card.synthetic,
                warning=self.card.warning,
            ))
        return predictions
