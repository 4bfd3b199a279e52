"""Network cost per configuration: parameters, GMACs at its input size, CPU latency p50 at
batch 1 with 2 threads, and peak RSS. Each configuration runs in a fresh subprocess so that
peak RSS is its own. With --accuracy, also the shipped weights' MAE and 95% interval coverage
on held-out phantoms that were not in their training set (written here with their own seed).

    .venv/bin/python bench/model.py [--runs 7] [--accuracy [--heldout 500]] [name ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(name: str, runs: int, input_size: int | None = None) -> dict[str, float | str]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from models import build

    torch.set_num_threads(2)
    net = build(name, **({"input_size": input_size} if input_size else {})).eval()
    size = net.config.input_size
    image, sex = torch.rand(1, 1, size, size), torch.tensor([1])
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            net(image, sex)
        net(image, sex)  # warm up
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            net(image, sex)
            times.append((time.perf_counter() - started) * 1000)
    return {
        "name": name,
        "input": size,
        "params_m": sum(p.numel() for p in net.parameters()) / 1e6,
        "gmacs": counter.get_total_flops() / 2e9,
        "p50_ms": statistics.median(times),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


HELDOUT_SEED = 7  # the demo weights: trained on seeds 1 and 11, calibrated on seed 3


def accuracy(model_dir: Path | None, count: int, *, record: bool = False) -> None:
    import tempfile

    import torch

    from models.card import amend_card
    from models.datasets import rsna_samples
    from models.evaluate import predict_all, summarise
    from models.inference import Predictor
    from models.shipped import PHANTOM_MODEL_DIR
    from service.phantoms import write_phantom_set

    torch.set_num_threads(2)
    labels = ROOT.parent / "shared" / "data" / "rsna-labels" / "boneage-training-dataset.csv"
    predictor = Predictor.from_dir(model_dir or PHANTOM_MODEL_DIR)
    with tempfile.TemporaryDirectory() as tmp:
        write_phantom_set(Path(tmp), count, seed=HELDOUT_SEED, size=512,
                          labels_source=labels if labels.exists() else None)
        samples = rsna_samples(Path(tmp), Path(tmp) / "labels.csv")
        summary = summarise(predict_all(predictor, samples, batch_size=32))
    overall, cover = summary["overall"], summary.get("interval_95", {})
    card = predictor.card
    print(f"{card.name} {card.version} ({'synthetic' if card.synthetic else 'real'} weights, "
          f"input {predictor.net.config.input_size} px) on {count} held-out phantoms "
          f"(seed {HELDOUT_SEED}):")
    print(f"  MAE {overall['mae']:.2f} months, RMSE {overall['rmse']:.2f}, median AE "
          f"{overall['median_ae']:.2f}, R2 {overall['r2']:.3f}, Spearman "
          f"{overall['spearman']:.3f}")
    if cover:
        print(f"  95% interval coverage {cover['coverage']:.1%}, mean width "
              f"{cover['mean_width_months']:.1f} months")
    for sex, metrics in summary["by_sex"].items():
        print(f"  {sex}: MAE {metrics['mae']:.2f} (n={metrics['n']})")
    print(f"  stage accuracy {summary['stage_confusion']['accuracy']:.1%}")
    size = predictor.net.config.input_size
    cost = measure(card.config["name"], 15, size)
    print(f"  cost at {size} px: {cost['params_m']:.2f} M parameters, {cost['gmacs']:.3f} GMACs, "
          f"CPU p50 {cost['p50_ms']:.1f} ms (batch 1, 2 threads, network only)")
    if record:
        directory = model_dir or PHANTOM_MODEL_DIR
        amend_card(directory, "metrics", "cost", {
            "input_size": size, "params_m": round(cost["params_m"], 2),
            "gmacs": round(cost["gmacs"], 3),
            "cpu_p50_ms_batch1_2_threads": round(cost["p50_ms"], 1)})
        amend_card(directory, "metrics", "heldout_phantoms", {
            "count": count, "seed": HELDOUT_SEED, "mae_months": round(overall["mae"], 2),
            "rmse_months": round(overall["rmse"], 2), "r2": round(overall["r2"], 3),
            "interval_95_coverage": round(cover.get("coverage", float("nan")), 3),
            "interval_95_mean_width_months": round(cover.get("mean_width_months",
                                                             float("nan")), 1),
            "stage_accuracy": round(summary["stage_confusion"]["accuracy"], 3),
            "by_sex_mae": {k: round(v["mae"], 2) for k, v in summary["by_sex"].items()},
        })
        card_path = directory / "model.json"
        print(f"  recorded in {card_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--accuracy", action="store_true",
                        help="score the phantom weights (or --model) on held-out phantoms; "
                             "the research model is scored on real images by `boneage "
                             "evaluate --part val`")
    parser.add_argument("--heldout", type=int, default=500)
    parser.add_argument("--model", type=Path,
                        help="model directory (default: the phantom weights)")
    parser.add_argument("--record", action="store_true",
                        help="with --accuracy: write the figures into the model card")
    args = parser.parse_args()
    if args.accuracy:
        accuracy(args.model, args.heldout, record=args.record)
        return
    if args.one:
        print(json.dumps(measure(args.one, args.runs)))
        return
    from models import CONFIGS

    names = args.names or list(CONFIGS)
    print(f"{'network':<11} {'input':>5} {'params M':>9} {'GMACs':>7} {'p50 ms':>8} {'RSS MB':>7}")
    for name in names:
        result = subprocess.run(
            [sys.executable, __file__, "--one", name, "--runs", str(args.runs)],
            capture_output=True, text=True, check=True,
        )
        row = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{row['name']:<11} {row['input']:>5} {row['params_m']:>9.2f} {row['gmacs']:>7.2f} "
              f"{row['p50_ms']:>8.1f} {row['peak_rss_mb']:>7.0f}")


if __name__ == "__main__":
    main()
