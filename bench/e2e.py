"""End-to-end latency: Orthanc -> boneage-pacs -> Orthanc, with real peers on loopback.

A real Orthanc auto-routes each phantom DX (about 10 MB) to `boneage serve`, which assesses it
and sends the SR and the report image back. Latency is from the start of dcmtk's storescu into
Orthanc until Orthanc's REST API lists both results for that study. Sequential: --count
phantoms one after another (p50, p95). Burst: --count phantoms sent at once (throughput).

    .venv/bin/python bench/e2e.py [--count 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.phantom import render
from service.phantoms import phantom_dicom
from tests.orthanc import AE_TITLE, Orthanc
from tests.peers import ServiceProcess, free_port, tool

SIZE = 2304  # 2304 x 2304 x 16 bit: 10.6 MB of pixels


def make_phantoms(directory: Path, count: int, seed: int) -> list[tuple[Path, str]]:
    out = []
    for index in range(count):
        ds = phantom_dicom(render(30 + (index * 37) % 170, index % 2 == 0, seed + index,
                                  size=SIZE), f"{seed + index:06d}")
        path = directory / f"dx{seed + index:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append((path, str(ds.StudyInstanceUID)))
    return out


def results_in(orthanc: Orthanc, study_uid: str) -> bool:
    found = orthanc.post("/tools/find", {"Level": "Series", "Query": {
        "StudyInstanceUID": study_uid}, "Expand": True})
    modalities = {series["MainDicomTags"].get("Modality") for series in found}
    return {"SR", "OT"} <= modalities


def send(orthanc: Orthanc, paths: list[Path]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([tool("storescu"), "-aet", "MODALITY", "-aec", AE_TITLE,
                             "127.0.0.1", str(orthanc.dicom_port), *map(str, paths)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_all(orthanc: Orthanc, service: ServiceProcess, studies: list[str], started: float,
             timeout: float = 600) -> list[float]:
    done: dict[str, float] = {}
    while len(done) < len(studies):
        if service.process.poll() is not None:
            raise RuntimeError(f"boneage serve exited ({service.process.returncode}) with "
                               f"{len(done)}/{len(studies)} results back; see {service.log_path}")
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{len(done)}/{len(studies)} results after {timeout}s")
        for study in studies:
            if study not in done and results_in(orthanc, study):
                done[study] = time.perf_counter() - started
        time.sleep(0.02)
    return [done[s] for s in studies]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        orthanc_port = free_port()
        service = ServiceProcess(root / "var", {
            "BONEAGE_DESTINATIONS": f"{AE_TITLE}@127.0.0.1:{orthanc_port}"})
        orthanc = Orthanc(root / "orthanc", service.port, dicom_port=orthanc_port)
        service.start()
        orthanc.start()
        try:
            warm = make_phantoms(root, 1, 900)
            started = time.perf_counter()
            send(orthanc, [warm[0][0]]).wait()
            wait_all(orthanc, service, [warm[0][1]], started)  # loads the model once

            sequential = make_phantoms(root, args.count, 1000)
            size_mb = sequential[0][0].stat().st_size / 1e6
            latencies = []
            for path, study in sequential:
                started = time.perf_counter()
                send(orthanc, [path]).wait()
                latencies += wait_all(orthanc, service, [study], started)
            print(f"sequential: {args.count} phantom DX of {size_mb:.1f} MB, Orthanc -> us -> "
                  f"Orthanc (SR and report image listed)")
            print(f"  p50 {statistics.median(latencies):.2f} s, p95 "
                  f"{percentile(latencies, 0.95):.2f} s, min {min(latencies):.2f} s, max "
                  f"{max(latencies):.2f} s")

            burst = make_phantoms(root, args.count, 2000)
            started = time.perf_counter()
            senders = [send(orthanc, [path]) for path, _ in burst]
            finished = wait_all(orthanc, service, [study for _, study in burst], started)
            for sender in senders:
                sender.wait()
            total = max(finished)
            print(f"burst: {args.count} at once, all results back in {total:.1f} s: "
                  f"{args.count / total:.2f} images/s; per-image latency p50 "
                  f"{statistics.median(finished):.1f} s, p95 {percentile(finished, 0.95):.1f} s")
        finally:
            orthanc.stop()
            service.stop()


if __name__ == "__main__":
    main()
