"""Image and anatomy gates measured on real images: where each threshold comes from.

Groups: real RSNA hands at 299 px (the fixed split's held-out parts, never the training
part), the ten full-size development hands, real negatives from pydicom-data (chest and ankle
CR, CT, MR, ultrasound) and MedNIST's non-hand classes. For each gate it prints the value's
percentiles per group and, under the thresholds in force, the share of each group each gate
rejects: false rejections for hands, misses for negatives.

    python bench/gates.py --shared ../shared/data [--hands 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dicom_io.pixels import read_radiograph
from models.datasets import read_image_file, rsna_samples
from models.handcheck import HandCheck
from models.shipped import HAND_CHECK_DIR
from models.splits import stratified_split
from service.gates import GateThresholds
from service.gates.anatomy import anatomy_gate
from service.gates.image import image_gates

NEGATIVE_FILES = ("RG1_UNCR.dcm", "RG1_J2KR.dcm", "RG3_UNCR.dcm", "RG3_J2KR.dcm",
                  "CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm")
MEDNIST_NEGATIVES = ("CXR", "AbdomenCT", "ChestCT", "HeadCT", "BreastMRI")


def held_out_hands(shared: Path, count: int, part: str = "calibration") -> list[np.ndarray]:
    """Real RSNA hands the bone-age network never trained on (a fixed-split part)."""
    samples = rsna_samples(shared / "rsna-299", shared / "rsna-299" / "labels.csv")
    split = stratified_split(samples, 1200, 1000, 0)
    return [s.pixels() for s in split.part(part)[:count]]


def mednist(shared: Path, per_class: int) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = defaultdict(list)
    with tarfile.open(shared / "mednist" / "mednist-64.tar.gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 2:
                continue
            label = parts[-2]
            if label in MEDNIST_NEGATIVES and len(out[label]) < per_class:
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                out[label].append(read_image_file(io.BytesIO(data)))  # type: ignore[arg-type]
    return out


def measure(groups: dict[str, list[np.ndarray]], limits: GateThresholds,
            check: HandCheck) -> dict[str, dict]:
    report = {}
    for group, images in groups.items():
        values: dict[str, list[float]] = defaultdict(list)
        rejected: dict[str, int] = defaultdict(int)
        any_rejected = 0
        for pixels in images:
            gates = [*image_gates(pixels, None, limits), anatomy_gate(pixels, check, limits)]
            for gate in gates:
                values[gate.name].append(float(gate.value))
                rejected[gate.name] += not gate.passed
            any_rejected += not all(g.passed for g in gates)
        hand = np.array(values["is_hand"])
        report[group] = {
            "n": len(images),
            "is_hand_below": {str(t): round(float((hand < t).mean()), 4)
                              for t in (0.005, 0.01, 0.02, 0.05, 0.1, 0.5)},
            "rejected_any": round(any_rejected / max(len(images), 1), 4),
            "rejected_by": {k: round(v / len(images), 4) for k, v in rejected.items() if v},
            "percentiles": {name: dict(zip(("p0", "p0.1", "p1", "p5", "p50", "p95", "p99",
                                            "p100"),
                                           np.round(np.percentile(v, (0, 0.1, 1, 5, 50, 95, 99,
                                                                      100)), 4).tolist(),
                                           strict=True))
                            for name, v in values.items()},
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--hands", type=int, default=1000)
    parser.add_argument("--part", default="calibration", help="fixed-split part of hands")
    parser.add_argument("--mednist-per-class", type=int, default=400)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from pydicom.data import get_testdata_file

    groups = {
        f"rsna-299 hands ({args.part})": held_out_hands(args.shared, args.hands, args.part),
        "full-size dev hands": [read_image_file(p) for p in
                                sorted((args.shared / "real-hands-dev").glob("*.png"))],
        "pydicom-data negatives": [read_radiograph(Path(get_testdata_file(name))).pixels
                                   for name in NEGATIVE_FILES],
    }
    for label, images in mednist(args.shared, args.mednist_per_class).items():
        groups[f"MedNIST {label}"] = images
    report = measure(groups, GateThresholds(), HandCheck.from_dir(HAND_CHECK_DIR))
    for group, row in report.items():
        print(f"{group}: n={row['n']} rejected {row['rejected_any']:.1%} "
              f"by {row['rejected_by']}; hand probability below t: {row['is_hand_below']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
