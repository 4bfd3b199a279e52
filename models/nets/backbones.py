"""Backbones that return feature maps, built from timm without pretrained weights.

Weights are never downloaded (nothing outside the machine is reachable at run time); a
hospital that has ImageNet weights can load them into these modules itself. Radiographs are
one channel, so the stem takes one channel.
"""

from __future__ import annotations

import copy

import timm
import torch
from torch import nn


def feature_backbone(name: str) -> nn.Module:
    """A timm model whose forward returns the last feature map (B, C, H, W)."""
    return timm.create_model(name, pretrained=False, num_classes=0, global_pool="", in_chans=1)


def feature_shape(module: nn.Module, input_size: int) -> tuple[int, int, int]:
    """(C, H, W) of `module`'s output for a square one-channel input, computed on the meta
    device: no memory, no arithmetic."""
    training = module.training
    module.eval()
    try:
        with torch.device("meta"):
            meta = _meta_copy(module)
            out = meta(torch.empty(1, 1, input_size, input_size))
    finally:
        module.train(training)
    return int(out.shape[1]), int(out.shape[2]), int(out.shape[3])


def _meta_copy(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).to("meta")


class CoordinateAttention(nn.Module):
    """Coordinate attention (Hou et al., CVPR 2021): channel attention factorised along height
    and width, so the map keeps where a feature is, not only that it is there."""

    def __init__(self, channels: int, reduction: int = 32) -> None:
        super().__init__()
        hidden = max(8, channels // reduction)
        self.reduce = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.Hardswish()
        )
        self.to_h = nn.Conv2d(hidden, channels, 1)
        self.to_w = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        pooled_h = x.mean(dim=3, keepdim=True)  # B, C, H, 1
        pooled_w = x.mean(dim=2, keepdim=True).transpose(2, 3)  # B, C, W, 1
        mixed = self.reduce(torch.cat([pooled_h, pooled_w], dim=2))
        a_h, a_w = torch.split(mixed, [h, w], dim=2)
        return x * torch.sigmoid(self.to_h(a_h)) * torch.sigmoid(self.to_w(a_w.transpose(2, 3)))


def coordinate_attention_resnet(depth: int = 34) -> nn.Module:
    """A timm ResNet with coordinate attention after each of its four stages (seed paper 5)."""
    model = timm.create_model(
        f"resnet{depth}", pretrained=False, num_classes=0, global_pool="", in_chans=1
    )
    for index in range(1, 5):
        stage = getattr(model, f"layer{index}")
        channels = stage[-1].conv2.out_channels if hasattr(stage[-1], "conv2") else None
        if channels is None:
            raise ValueError("unexpected ResNet block layout")
        setattr(model, f"layer{index}", nn.Sequential(stage, CoordinateAttention(channels)))
    return model
