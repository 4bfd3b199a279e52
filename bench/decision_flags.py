"""How often the decision flags fire on real radiographs, and whether they fire on the errors.

Reads the `predictions.csv` that `boneage evaluate` writes (held-out real images) and
reports, for IMPLAUSIBLE_FOR_AGE and the stage-gap flag HEADS_DISAGREE, the rate and the MAE
with and without the flag. The RSNA labels carry no chronological age, so the reader's bone
age stands in for it: in the clinic the flag compares the estimate with the calendar age, and a
normal child's bone age lies within about 2 SD of it, so with the reader's value the flag
fires only where the estimate is grossly wrong, which is what it must catch.

    python bench/decision_flags.py bench/out/eval-val/predictions.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.clinical import gp_sd
from service.gates import GateThresholds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path)
    args = parser.parse_args()
    limit = GateThresholds().implausible_sds
    rows = list(csv.DictReader(args.predictions.open()))
    true = np.array([float(r["boneage"]) for r in rows])
    predicted = np.array([float(r["predicted"]) for r in rows])
    males = [r["male"] == "True" for r in rows]
    errors = np.abs(predicted - true)
    sds = [None if (sd := gp_sd(t, m)) is None else (p - t) / sd
           for t, p, m in zip(true, predicted, males, strict=True)]
    known = np.array([s is not None for s in sds])
    implausible = np.array([s is not None and abs(s) > limit for s in sds])
    report = {
        "n": len(rows),
        "implausible_for_age": {
            "sds_limit": limit, "with_sd_known": int(known.sum()),
            "rate": float(implausible[known].mean()),
            "mae_flagged": float(errors[implausible].mean()) if implausible.any() else None,
            "mae_not_flagged": float(errors[known & ~implausible].mean()),
            "errors_over_24_months_caught": f"{int((implausible & (errors > 24)).sum())} of "
                                            f"{int((known & (errors > 24)).sum())}",
        },
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
