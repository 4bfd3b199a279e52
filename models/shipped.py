"""Where the shipped model directories lie, so that no other room builds these paths.

- `DEFAULT_MODEL_DIR`: the research model trained on real RSNA 2017 radiographs, the one the
  service loads unless `BONEAGE_MODEL_DIR` names another.
- `PHANTOM_MODEL_DIR`: the synthetic demo weights trained on procedural phantoms, kept for
  tests and demos that must run without the RSNA data (and to show what a synthetic card
  makes every output say).
- `HAND_CHECK_DIR`: the "is this a hand radiograph" check behind the anatomy gate.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL_DIR = WEIGHTS_DIR / "boneage-mnv3"
PHANTOM_MODEL_DIR = WEIGHTS_DIR / "boneage-b0-phantom"
HAND_CHECK_DIR = WEIGHTS_DIR / "hand-check"
