"""The bone-age models library: networks, phantoms, labels. Imports nothing else of ours."""

from models.registry import CONFIGS, BoneAgeNet, NetConfig, build, config

__all__ = ["CONFIGS", "BoneAgeNet", "NetConfig", "build", "config"]
