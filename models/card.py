"""Model directories: `weights.safetensors` plus `model.json`, the model card.

The card travels with the weights and says what they are: configuration, version, the hash
of the weights, how they were trained, and, for demo weights, that they were trained on
synthetic phantoms and are not for diagnostic use. Loading checks the hash, so a card can never
describe other weights than the ones beside it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from models.registry import BoneAgeNet, NetConfig

WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "model.json"
NOT_VALIDATED = "NOT FOR DIAGNOSTIC USE: weights not clinically validated"
RESEARCH_MODEL = "NOT FOR DIAGNOSTIC USE: research model, not clinically validated"


class ModelDirError(ValueError):
    """A model directory is incomplete, inconsistent or tampered with."""


@dataclass(frozen=True)
class ModelIdentity:
    """Which weights produced a result, as every writer (SR, SC, audit row, JSON) states it:
    one value taken from the card at load time, in the manner of MONAI Deploy's ModelInfo,
    so no writer re-reads the card or copies its fields."""

    name: str
    version: str
    weights_sha256: str
    synthetic: bool
    warning: str | None  # the line every output must carry, if any

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelCard:
    name: str
    version: str
    config: dict[str, Any]
    synthetic: bool  # trained on procedural phantoms, not on radiographs of patients
    intended_use: str = NOT_VALIDATED
    training_data: dict[str, Any] = field(default_factory=dict)  # description, labels hash
    metrics: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)  # interval margin, tiers
    inference: dict[str, Any] = field(default_factory=dict)  # e.g. tta_views (models.tta)
    created: str = ""
    weights_sha256: str = ""

    @property
    def geometry(self) -> str:
        """How a rectangle became the square input in training (`models.transforms`); cards
        written before the choice existed were padded."""
        return str(self.training_data.get("geometry", "pad"))

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(self.name, self.version, self.weights_sha256, self.synthetic,
                             self.warning)

    @property
    def warning(self) -> str | None:
        """The line every output made with these weights must carry, if any."""
        if self.synthetic:
            return f"{NOT_VALIDATED}; synthetic demo model trained on phantoms"
        if self.intended_use == NOT_VALIDATED:
            return RESEARCH_MODEL
        return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def save_model_dir(directory: Path, net: BoneAgeNet, card: ModelCard) -> ModelCard:
    """Write weights and card; the card's config and hash are taken from what is written."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu().contiguous() for key, value in net.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE))
    card.config = asdict(net.config)
    card.weights_sha256 = file_sha256(directory / WEIGHTS_FILE)
    (directory / CARD_FILE).write_text(json.dumps(asdict(card), indent=2) + "\n")
    return card


def amend_card(directory: Path, section: str, key: str, value: Any) -> None:
    """Add figures measured after training (held-out accuracy, cost, a calibration) to a
    card: its hash covers the weights only, so the weights stay verified."""
    card_path = directory / CARD_FILE
    data = json.loads(card_path.read_text())
    if key:
        data.setdefault(section, {})[key] = value
    else:
        data[section] = value
    card_path.write_text(json.dumps(data, indent=2) + "\n")


def load_model_dir(
    directory: Path, device: torch.device | str = "cpu"
) -> tuple[BoneAgeNet, ModelCard]:
    """Build the network the card describes and load its weights, after checking the hash."""
    card_path, weights_path = directory / CARD_FILE, directory / WEIGHTS_FILE
    for path in (card_path, weights_path):
        if not path.is_file():
            raise ModelDirError(f"{directory}: missing {path.name}")
    card = ModelCard(**json.loads(card_path.read_text()))
    actual = file_sha256(weights_path)
    if actual != card.weights_sha256:
        raise ModelDirError(
            f"{directory}: {WEIGHTS_FILE} has sha256 {actual[:12]}, the card says "
            f"{card.weights_sha256[:12]}"
        )
    net = BoneAgeNet(NetConfig(**card.config))
    net.load_state_dict(load_file(str(weights_path)), strict=True)
    return net.to(device).eval(), card
