"""The fixed split of a labelled set into training, validation and calibration images.

Validation picks the epoch and the settings; calibration fits the interval margin and is
never trained or tuned on. Both are drawn stratified by sex and age, so that their age
distributions match the training set's even for the rare infants and near-adults, and the
split is a pure function of the ids, labels and seed: any later command (evaluate,
calibrate, a test) re-draws exactly the same images, and the digests in the model card prove
it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np


class Labelled(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def age_months(self) -> float: ...
    @property
    def male(self) -> bool: ...


T = TypeVar("T", bound=Labelled)
PARTS = ("train", "val", "calibration")


@dataclass(frozen=True)
class Split:
    train: list
    val: list
    calibration: list
    seed: int

    def part(self, name: str) -> list:
        if name not in PARTS:
            raise ValueError(f"unknown split part {name!r}; known: {', '.join(PARTS)}")
        return getattr(self, name)

    def describe(self) -> dict[str, object]:
        """What a model card records: the rule, the seed, and each part's size and digest."""
        return {
            "rule": "stratified by sex and age (systematic draw over the seeded sex/age order)",
            "seed": self.seed,
            **{name: {"count": len(self.part(name)), "ids_sha256": ids_digest(self.part(name))}
               for name in PARTS},
        }


def ids_digest(samples: Sequence[Labelled]) -> str:
    """sha256 of the sorted ids, one per line: the same images give the same digest."""
    text = "\n".join(sorted(str(s.id) for s in samples))
    return hashlib.sha256(text.encode()).hexdigest()


def stratified_split(samples: Sequence[T], val_count: int, calibration_count: int,
                     seed: int = 0) -> Split:
    """Draw `val_count` and then `calibration_count` samples systematically along the
    samples ordered by (sex, age, seeded random key): each part then holds every sex and
    age in the set's own proportions, which random sampling only gives on average."""
    if val_count + calibration_count >= len(samples):
        raise ValueError(f"{len(samples)} samples are too few to hold out "
                         f"{val_count} + {calibration_count}")
    rng = np.random.default_rng(seed)
    keys = rng.random(len(samples))
    order = sorted(range(len(samples)),
                   key=lambda i: (samples[i].male, samples[i].age_months, keys[i]))
    val_positions = _systematic(len(order), val_count, rng.random())
    val = [samples[order[i]] for i in val_positions]
    rest = [order[i] for i in range(len(order)) if i not in set(val_positions)]
    cal_positions = _systematic(len(rest), calibration_count, rng.random())
    calibration = [samples[rest[i]] for i in cal_positions]
    taken = {order[i] for i in val_positions} | {rest[i] for i in cal_positions}
    train = [samples[i] for i in range(len(samples)) if i not in taken]
    return Split(train, val, calibration, seed)


def _systematic(length: int, count: int, offset: float) -> list[int]:
    """`count` evenly spaced positions in range(length), starting at a random phase."""
    if count <= 0:
        return []
    step = length / count
    return sorted({min(int((k + offset) * step), length - 1) for k in range(count)})


class SplitMismatch(ValueError):
    """The images at hand do not re-draw the split a model card records."""


def split_from_card(samples: Sequence[T], recorded: dict) -> Split:
    """Re-draw the fixed split a model card records and check every part's digest, so that
    `evaluate` or `calibrate` on "the validation part" means the very images of training."""
    split = stratified_split(samples, recorded["val"]["count"],
                             recorded["calibration"]["count"], recorded["seed"])
    for name in PARTS:
        if ids_digest(split.part(name)) != recorded[name]["ids_sha256"]:
            raise SplitMismatch(
                f"the {name} part drawn from these {len(samples)} images differs from the one "
                "the model card records: not the labelled set the model was trained on")
    return split
