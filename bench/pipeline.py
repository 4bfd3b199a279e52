"""Per-stage latency of the assessment pipeline on a ~10 MB DX phantom, 2 CPU threads.

Stages, each timed on its own and repeated: decode (parse + pixels + LUTs), gates (header,
image, anatomy), transforms (MONAI inference Compose), forward (network only), Grad-CAM
(forward + backward + map back to the source geometry), and the whole `assess_path` as the
service runs it. Prints p50 and p90 per stage.

    .venv/bin/python bench/pipeline.py [--runs 9] [--model DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZE = 2560  # phantom rows; 2560 x 2560 x 16 bit = 13 MB of pixels, about a real DX


def timed(function: Callable[[], object], runs: int) -> list[float]:
    function()  # warm up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--model", type=Path)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    from dicom_io.header import header_facts, read_dataset
    from dicom_io.pixels import decode
    from models.phantom import render
    from service.clinical import chronological_age
    from service.gates.anatomy import anatomy_gate
    from service.gates.header import header_gates
    from service.gates.image import image_gates
    from service.phantoms import phantom_dicom
    from service.pipeline import Assessor

    assessor = Assessor.load(args.model)
    predictor = assessor.predictor
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dx.dcm"
        phantom_dicom(render(110, True, 1, size=SIZE), "0001").save_as(
            path, enforce_file_format=True)
        size_mb = path.stat().st_size / 1e6
        dataset = read_dataset(path)
        facts = header_facts(dataset)
        radiograph = decode(dataset, facts)
        pixels = radiograph.pixels
        chrono = chronological_age(facts.birth_date, facts.study_date, facts.patient_age)
        tensor, _ = predictor.transform(pixels)
        batch = tensor[None].contiguous(memory_format=predictor.memory_format)
        sex = torch.tensor([1.0])

        def forward() -> None:
            with torch.inference_mode():
                predictor.net(batch, sex)

        stages = {
            "decode": lambda: decode(read_dataset(path)),
            "gates": lambda: (header_gates(facts, chrono.months, assessor.limits),
                              image_gates(pixels, None, assessor.limits),
                              anatomy_gate(pixels, assessor.hand_check, assessor.limits)),
            "transforms": lambda: predictor.transform(pixels),
            "forward": forward,
            "grad-cam": lambda: predictor.predict([pixels], [True], heatmaps=True),
            "total (assess_path)": lambda: assessor.assess_path(path),
        }
        print(f"{size_mb:.1f} MB DX, {pixels.shape[0]}x{pixels.shape[1]}, model "
              f"{predictor.card.name} {predictor.card.version} at "
              f"{predictor.net.config.input_size} px, torch threads {torch.get_num_threads()}")
        print(f"{'stage':<22}{'p50 ms':>9}{'p90 ms':>9}")
        for name, function in stages.items():
            times = sorted(timed(function, args.runs))
            p90 = times[min(len(times) - 1, round(0.9 * (len(times) - 1)))]
            print(f"{name:<22}{statistics.median(times):>9.1f}{p90:>9.1f}")
        print("grad-cam includes the prediction (one forward and one backward pass)")


if __name__ == "__main__":
    main()
