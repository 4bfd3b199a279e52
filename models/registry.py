"""Named network configurations behind one builder: `build(name, **overrides)`.

Each seed system is a configuration, not a class of its own: the same network module
(backbone -> optional reduce conv / pooling -> features + sex -> fully connected layers ->
heads) covers all of them, so the trainer, the evaluator and the inference API treat them
alike and ablations are keyword overrides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from models.heads import AGE_BINS, STAGE_NAMES, SexInput, expectation
from models.nets.backbones import coordinate_attention_resnet, feature_backbone, feature_shape

# Age normalisation of regression outputs (seed EfficientNet paper's RSNA statistics).
AGE_MEAN, AGE_SD = 127.3994, 41.1211


@dataclass(frozen=True)
class NetConfig:
    name: str
    backbone: str
    input_size: int
    body_part: str = "HAND"
    sex_embedding: str = "none"  # none | scalar | replicated | fc
    # GPNet's "reduce conv" axis, for flattened feature maps: True is its 3x3 stride-2 conv
    # halving the channels; False is the 16Bit baseline's 2x2 max-pool, the only other
    # reduction the paper's figures admit (100,352 = 2048 x 7 x 7 features at 500 px).
    reduce_conv: bool = False
    flatten: bool = False  # flatten the feature map (GPNet) instead of global average pooling
    fc_layers: int = 0
    fc_size: int = 0
    regression: bool = False  # a regression output (months, normalised internally)
    distribution: bool = False  # softmax over 240 one-month bins, prediction = expectation
    stage: bool = False  # six developmental buckets
    loss: str = "mse"  # mse | ldl (MAE + lambda KL) | multitask (CE + MSE) | ldl+stage
    ldl_lambda: float = 0.5
    ldl_sigma: float = 15.0
    description: str = ""


CONFIGS: dict[str, NetConfig] = {
    "gpnet": NetConfig(
        name="gpnet", backbone="inception_v3", input_size=700, sex_embedding="replicated",
        reduce_conv=True, flatten=True, fc_layers=1, fc_size=500, regression=True, loss="mse",
        description="GPNet: Inception-V3, sex replicated x32, 3x3/2 reduce conv, 1x500 FC, 700 px",
    ),
    "ldl": NetConfig(
        name="ldl", backbone="legacy_xception", input_size=560, sex_embedding="fc",
        distribution=True, loss="ldl", ldl_lambda=0.5,
        description="Age-distribution learning: Xception, sex via 32-unit FC, 240-bin softmax, "
                    "MAE + lambda KL to N(y, 15)",
    ),
    "resnet18": NetConfig(
        name="resnet18", backbone="resnet18", input_size=224, regression=True, loss="mse",
        description="Student-project baseline: ResNet-18 regression at 224 px, MSE",
    ),
    "multitask": NetConfig(
        name="multitask", backbone="efficientnet_b4", input_size=300, sex_embedding="scalar",
        regression=True, stage=True, loss="multitask",
        description="Multitask EfficientNet-B4: 1792 features + sex, 6-bucket stage (CE) + "
                    "regression (MSE)",
    ),
    "cxr-age": NetConfig(
        name="cxr-age", backbone="cxr_resnet34_coordatt", input_size=512, body_part="CHEST",
        sex_embedding="scalar", regression=True, loss="mse",
        description="Chest-radiograph age: ResNet-34 with coordinate attention",
    ),
    "boneage-b0": NetConfig(
        name="boneage-b0", backbone="efficientnet_b0", input_size=512,
        sex_embedding="replicated", distribution=True, stage=True, loss="ldl+stage",
        ldl_lambda=0.5,
        description="Default: EfficientNet-B0 at 512 px, sex replicated x32, age distribution "
                    "(240 bins) + stage heads",
    ),
    "boneage-mnv3": NetConfig(
        name="boneage-mnv3", backbone="mobilenetv3_large_100", input_size=224,
        sex_embedding="replicated", distribution=True, stage=True, loss="ldl+stage",
        ldl_lambda=0.5,
        description="CPU-lean: MobileNetV3-Large at 224 px, sex replicated x32, age "
                    "distribution (240 bins) + stage heads; about half boneage-b0's training "
                    "step on two CPU cores",
    ),
}


def config(name: str, **overrides: Any) -> NetConfig:
    if name not in CONFIGS:
        raise KeyError(f"unknown network {name!r}; known: {', '.join(sorted(CONFIGS))}")
    base = CONFIGS[name]
    if "backbone" in overrides and name == "gpnet":  # GPNet's ablation names
        overrides["backbone"] = {"resnext50": "resnext50_32x4d"}.get(
            overrides["backbone"], overrides["backbone"]
        )
    return replace(base, **overrides)


def names_for_body_part(body_part: str) -> list[str]:
    return [name for name, cfg in CONFIGS.items() if cfg.body_part == body_part.upper()]


class BoneAgeNet(nn.Module):
    """image (B, 1, S, S) in [0, 1], sex (B,) 1 = male -> dict of outputs:

    - `age`: (B,) months: the expectation of the distribution, or the regression
    - `age_probs`: (B, 240) when the config has a distribution head, and its logarithm
      `age_log_probs` (exact where a probability underflows, for the loss)
    - `stage_logits`: (B, 6) when it has a stage head
    """

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.config = cfg
        if cfg.backbone == "cxr_resnet34_coordatt":
            self.backbone = coordinate_attention_resnet(34)
        else:
            self.backbone = feature_backbone(cfg.backbone)
        channels, height, width = feature_shape(self.backbone, cfg.input_size)
        trunk: list[nn.Module] = []
        if cfg.reduce_conv:
            trunk += [nn.Conv2d(channels, channels // 2, 3, stride=2), nn.ReLU(inplace=True)]
            channels, height, width = channels // 2, (height - 3) // 2 + 1, (width - 3) // 2 + 1
        elif cfg.flatten:
            trunk.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        if height < 1 or width < 1:
            raise ValueError(f"{cfg.name}: input {cfg.input_size} px is too small for the trunk")
        if cfg.flatten:
            trunk.append(nn.Flatten())
            features = channels * height * width
        else:
            trunk += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            features = channels
        self.trunk = nn.Sequential(*trunk)
        self.feature_count = features
        self.sex = SexInput(cfg.sex_embedding)
        layers: list[nn.Module] = []
        width_in = features + self.sex.dim
        for _ in range(cfg.fc_layers):
            layers += [nn.Linear(width_in, cfg.fc_size), nn.ReLU(inplace=True), nn.Dropout(0.2)]
            width_in = cfg.fc_size
        self.mlp = nn.Sequential(*layers)
        self.regression_head = nn.Linear(width_in, 1) if cfg.regression else None
        self.distribution_head = nn.Linear(width_in, AGE_BINS) if cfg.distribution else None
        self.stage_head = nn.Linear(width_in, len(STAGE_NAMES)) if cfg.stage else None
        if not (cfg.regression or cfg.distribution):
            raise ValueError(f"{cfg.name}: needs a regression or a distribution head")

    def forward(self, image: torch.Tensor, sex: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(self.backbone(image))
        sex_features = self.sex(sex)
        if sex_features is not None:
            features = torch.cat([features, sex_features.to(features.dtype)], dim=1)
        hidden = self.mlp(features)
        out: dict[str, torch.Tensor] = {}
        if self.distribution_head is not None:
            log_probs = torch.log_softmax(self.distribution_head(hidden).float(), dim=-1)
            probs = log_probs.exp()
            out["age_probs"] = probs
            out["age_log_probs"] = log_probs
            out["age"] = expectation(probs)
        if self.regression_head is not None:
            regressed = self.regression_head(hidden).squeeze(1).float() * AGE_SD + AGE_MEAN
            out.setdefault("age", regressed)
            out["age_regression"] = regressed
        if self.stage_head is not None:
            out["stage_logits"] = self.stage_head(hidden).float()
        return out

    def describe(self) -> dict[str, Any]:
        return asdict(self.config) | {
            "parameters": sum(p.numel() for p in self.parameters()),
            "features": self.feature_count,
        }


def build(name: str, **overrides: Any) -> BoneAgeNet:
    """Build a named configuration; keyword overrides change any NetConfig field, e.g.
    `build("gpnet", fc_layers=2, fc_size=1000, sex_embedding="fc", reduce_conv=False)`."""
    return BoneAgeNet(config(name, **overrides))
