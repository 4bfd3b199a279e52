"""The inference API the pipeline uses: load a model directory once, predict batches.

A `Predictor` holds no process-wide state and opens nothing at import, so a Celery prefork
worker can create one after the fork. With `heatmaps=True` the same forward pass also yields
a Grad-CAM map, returned in the source image's geometry.

One Predictor is shared by the threads of a process (the embedded runner's workers), and
Grad-CAM keeps the activations, gradients and outputs of the pass it drives on the wrapper, so
network passes are taken one at a time. Unlocked, two threads read each other's outputs (one
patient's bone age reported on another's image) and torch's autograd hooks can crash the
process. Pre- and post-processing stay parallel; torch already spreads one pass over the
intra-op threads, so the lock costs no throughput on the CPU.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.cam import HeatmapModel
from models.card import ModelCard, ModelIdentity, load_model_dir
from models.heads import (
    STAGE_NAMES,
    TIER_WIDTH_MONTHS,
    confidence_tier,
    expectation,
    interval,
    stage_of,
    with_margin,
)
from models.registry import BoneAgeNet
from models.transforms import Geometry, InferenceTransform, to_source
from models.tta import views_of


def pick_device(name: str) -> torch.device:
    """"auto" means CUDA when this process can see a GPU, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class Prediction:
    """DESIGN.md's Prediction. Which weights made it is the Predictor's `model` (one
    `ModelIdentity` per loaded model), not copied into every prediction."""

    bone_age_months: float
    interval_95: tuple[float, float] | None  # from the distribution head, when there is one
    stage: str  # the bucket of the predicted age
    stage_probability: float | None  # the stage head's probability for that bucket
    head_stage: str | None  # the stage head's own most probable bucket
    confidence: str | None
    heatmap: np.ndarray | None = None  # float32 [0, 1] in the source image's geometry

    def stage_gap(self) -> int:
        """How many buckets apart the stage head and the predicted age are."""
        if self.head_stage is None:
            return 0
        return abs(STAGE_NAMES.index(self.head_stage) - STAGE_NAMES.index(self.stage))


@dataclass(frozen=True)
class _Outputs:
    """One forward pass's per-row results, on the CPU."""

    ages: torch.Tensor  # (N,)
    raw: torch.Tensor | None  # (N, 2) the head's own 95% intervals
    bounds: torch.Tensor | None  # (N, 2) with the calibration margin
    stage_probs: torch.Tensor | None  # (N, 6)
    maps: torch.Tensor | None  # (N, S, S) Grad-CAM


class Predictor:
    def __init__(self, net: BoneAgeNet, card: ModelCard, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        memory_format = torch.channels_last if self.device.type == "cpu" else \
            torch.contiguous_format
        self.memory_format = memory_format
        self.net = net.to(self.device).to(memory_format=memory_format).eval()
        self.card = card
        self.model: ModelIdentity = card.identity
        self.transform = InferenceTransform(
            net.config.input_size, hand_crop=bool(card.training_data.get("hand_crop", False)),
            geometry=card.geometry,
        )
        self._heatmaps: HeatmapModel | None = None
        self._network = threading.Lock()
        # Fitted by `boneage calibrate` on labelled images the network did not train on.
        self.interval_margin = float(card.calibration.get("interval_margin_months", 0.0))
        self.tier_width = float(card.calibration.get("tier_width_months", TIER_WIDTH_MONTHS))
        spread = card.calibration.get("tier_spread_months")
        self.tier_spread = None if spread is None else (float(spread[0]), float(spread[1]))
        # Test-time augmentation (models.tta), when the card says it was measured to help.
        self.tta_views = int(card.inference.get("tta_views", 1))

    @classmethod
    def from_dir(cls, directory: Path, device: torch.device | str = "cpu") -> Predictor:
        net, card = load_model_dir(directory, device)
        return cls(net, card, device)

    def predict(self, images: Sequence[np.ndarray], males: Sequence[bool | None], *,
                heatmaps: bool = False) -> list[Prediction]:
        """`images`: 2-D float32 arrays in [0, 1], bone bright; `males`: sex per image, None
        where the header has none.

        The stage reported is the bucket of the predicted age, with the stage head's
        probability for that bucket: a low value there is the heads disagreeing. An image of
        unknown sex is read as a boy and as a girl and reported as the mean age, with an
        interval covering both and the lower stage probability, so that its tier is judged
        by the same rule and calibration as every other image.
        """
        rows: list[list[int]] = []
        row_images: list[np.ndarray] = []
        row_males: list[bool] = []
        for image, male in zip(images, males, strict=True):
            sexes = [True, False] if male is None else [bool(male)]
            rows.append(list(range(len(row_males), len(row_males) + len(sexes))))
            row_images += [image] * len(sexes)
            row_males += sexes
        prepared, out, maps = self._forward(row_images, row_males, heatmaps)
        raw = interval(out["age_probs"].float().cpu()) if "age_probs" in out else None
        outputs = _Outputs(
            ages=out["age"].float().cpu(), raw=raw,
            bounds=None if raw is None else with_margin(raw, self.interval_margin),
            stage_probs=torch.softmax(out["stage_logits"].float().cpu(), dim=1)
            if "stage_logits" in out else None,
            maps=None if maps is None else maps.detach().float().cpu(),
        )
        return [self._prediction(outputs, group, prepared[group[0]][1]) for group in rows]

    def _prediction(self, out: _Outputs, group: list[int], geometry: Geometry) -> Prediction:
        """The prediction of one image from its row(s) of a forward pass: one row, or two
        (boy and girl) for an unknown sex."""
        age = float(out.ages[group].mean())
        stage_index = int(stage_of(torch.tensor([age]))[0])
        probability = head = None
        if out.stage_probs is not None:
            probability = float(out.stage_probs[group, stage_index].min())
            head = STAGE_NAMES[int(out.stage_probs[group].mean(0).argmax())]
        pair = width = None
        if out.bounds is not None and out.raw is not None:
            pair = (float(out.bounds[group, 0].min()), float(out.bounds[group, 1].max()))
            # The tier reads the head's own spread: the calibration margin is the same for all.
            width = float(out.raw[group, 1].max() - out.raw[group, 0].min())
        return Prediction(
            bone_age_months=age,
            interval_95=pair,
            stage=STAGE_NAMES[stage_index],
            stage_probability=probability,
            head_stage=head,
            confidence=None if probability is None
            else confidence_tier(probability, width, self.tier_width, self.tier_spread),
            heatmap=None if out.maps is None
            else to_source(out.maps[group].mean(0).numpy(), geometry),
        )

    def raw_outputs(self, images: Sequence[np.ndarray], males: Sequence[bool]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What `boneage calibrate` fits on, per image of known sex: the predicted age
        (months), the distribution head's own 95% interval before the calibration margin
        (N, 2), and the stage head's probability for the predicted age's bucket, the same
        three numbers `predict` derives an interval and a confidence tier from."""
        _, out, _ = self._forward(images, males, heatmaps=False)
        if "age_probs" not in out or "stage_logits" not in out:
            raise ValueError(f"{self.card.name} has no distribution or stage head")
        ages = out["age"].float().cpu()
        stages = stage_of(ages)
        probabilities = torch.softmax(out["stage_logits"].float().cpu(), dim=1)
        return (ages.numpy(), interval(out["age_probs"].float().cpu()).numpy(),
                probabilities[torch.arange(len(stages)), stages].numpy())

    def _forward(self, images: Sequence[np.ndarray], males: Sequence[bool], heatmaps: bool
                 ) -> tuple[list, dict[str, torch.Tensor], torch.Tensor | None]:
        prepared = [self.transform(image) for image in images]
        batch = torch.stack([tensor for tensor, _ in prepared]).to(self.device)
        batch = batch.contiguous(memory_format=self.memory_format)
        sex = torch.tensor([1.0 if male else 0.0 for male in males], device=self.device)
        maps = None
        with self._network:
            if heatmaps:
                if self._heatmaps is None:
                    self._heatmaps = HeatmapModel(self.net)
                out, maps = self._heatmaps(batch, sex)
            else:
                with torch.inference_mode():
                    out = self.net(batch, sex)
            if self.tta_views > 1:
                out = self._with_views(batch, sex, out)
        return prepared, out, maps

    def _with_views(self, batch: torch.Tensor, sex: torch.Tensor,
                    plain: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Average the distributions over the plain input and its TTA views; Grad-CAM stays
        the plain input's."""
        n = batch.shape[0]
        moved = views_of(batch, self.tta_views)[n:].contiguous(memory_format=self.memory_format)
        with torch.inference_mode():
            others = self.net(moved, sex.repeat(self.tta_views - 1))
        out: dict[str, torch.Tensor] = {}
        for key in ("age_probs", "stage_logits"):
            if key in plain:
                first = plain[key].detach()
                values = first.softmax(1) if key == "stage_logits" else first
                rest = others[key].softmax(1) if key == "stage_logits" else others[key]
                mean = torch.cat([values[None], rest.view(-1, *values.shape)]).mean(0)
                out[key] = mean.log() if key == "stage_logits" else mean
        if "age_probs" in out:
            out["age"] = expectation(out["age_probs"])
        else:
            out["age"] = torch.cat([plain["age"].detach()[None],
                                    others["age"].view(-1, n)]).mean(0)
        return out
