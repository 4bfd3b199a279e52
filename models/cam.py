"""Grad-CAM heatmaps (monai.visualize) for the bone-age networks.

The score whose gradient Grad-CAM follows is the log of the probability mass the network puts
within a year of its own prediction (distribution heads), or the regressed age itself: the map
shows where the evidence for *this* bone age lies, which is what a radiologist checks it
against (carpals, epiphyses, physes), not merely where the network looks for "older".

One forward and one backward pass give both the prediction and the map: the wrapper keeps the
network's outputs of the pass Grad-CAM drives.
"""

from __future__ import annotations

import torch
from monai.visualize import GradCAM
from torch import nn

from models.registry import BoneAgeNet

EVIDENCE_WINDOW_MONTHS = 12.0


class _EvidenceScore(nn.Module):
    """net(image, sex) -> a (B, 1) score for Grad-CAM; keeps the outputs for the caller."""

    def __init__(self, net: BoneAgeNet) -> None:
        super().__init__()
        self.net = net
        self.outputs: dict[str, torch.Tensor] = {}

    def forward(self, image: torch.Tensor, sex: torch.Tensor) -> torch.Tensor:
        outputs = self.net(image, sex)
        self.outputs = {key: value.detach() for key, value in outputs.items()}
        if "age_probs" not in outputs:
            return outputs["age"][:, None]
        probs = outputs["age_probs"]
        centres = torch.arange(probs.shape[1], device=probs.device, dtype=probs.dtype) + 0.5
        near = (centres[None, :] - outputs["age"].detach()[:, None]).abs() \
            <= EVIDENCE_WINDOW_MONTHS
        return torch.log((probs * near).sum(dim=1, keepdim=True) + 1e-8)


def target_layer(net: BoneAgeNet) -> str:
    """The backbone's last convolution or normalisation layer: its activations are the last
    spatial feature map before pooling."""
    last = None
    for name, module in net.backbone.named_modules():
        if isinstance(module, nn.Conv2d | nn.BatchNorm2d):
            last = name
    if last is None:
        raise ValueError(f"{net.config.name}: no convolutional layer to attach Grad-CAM to")
    return f"net.backbone.{last}"


def _unit_range(maps: torch.Tensor) -> torch.Tensor:
    """Per-image min-max to [0, 1]. (MONAI's default normaliser flips the scale, for its own
    display convention.)"""
    flat = maps.flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - low) / (high - low).clamp_min(1e-12)).view_as(maps)


class HeatmapModel:
    """Wraps a network once; each call returns (outputs, heatmaps of shape (B, S, S))."""

    def __init__(self, net: BoneAgeNet) -> None:
        # Grad-CAM's backward hooks hand views to the layers after its target; an in-place
        # activation there (MobileNetV3's hard-swish after conv_head) would overwrite one and
        # autograd refuses. Out-of-place activations give the same values.
        for module in net.modules():
            if getattr(module, "inplace", False):
                module.inplace = False
        self.scorer = _EvidenceScore(net)
        self.cam = GradCAM(nn_module=self.scorer, target_layers=target_layer(net),
                           postprocessing=_unit_range)

    def __call__(self, image: torch.Tensor, sex: torch.Tensor
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        with torch.enable_grad():
            maps = self.cam(image, class_idx=0, sex=sex)
        return self.scorer.outputs, maps[:, 0].detach()
