"""Fuzzing the C-STORE path: mutated datasets and mutated Part 10 files sent over real
associations (pynetdicom as the sending SCU), with every response status kept, so the caller
can check that each one has its audit row. Used by tests/integration/test_fuzz.py (1,000) and
bench/fuzz.py (100,000).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config

from dicom_io.sop import STORAGE_SOP_CLASSES
from tests.hostile import mutate_bytes, mutate_dataset

SENDER_AE = "FUZZER"


@dataclass
class FuzzResult:
    statuses: Counter[int] = field(default_factory=Counter)  # answered C-STORE statuses
    unsendable: int = 0  # mutated past what the sending SCU can encode: never left us
    no_response: int = 0  # association ended or timed out before a response
    associations: int = 0
    slowest_s: float = 0.0  # longest C-STORE round trip
    elapsed_s: float = 0.0

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())


def _sender(dimse_timeout_s: float) -> AE:
    ae = AE(ae_title=SENDER_AE)
    ae.dimse_timeout = dimse_timeout_s
    ae.acse_timeout = dimse_timeout_s
    ae.network_timeout = dimse_timeout_s
    for sop_class in STORAGE_SOP_CLASSES:
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    return ae


def _mutant(seed_ds: Dataset, seed_bytes: bytes, rng: random.Random, workdir: Path,
            index: int) -> Path | Dataset:
    """Half are datasets with one element made hostile (sent encoded by pynetdicom), half are
    files with bytes flipped, cut or spliced (sent raw after their file meta)."""
    if rng.random() < 0.5:
        ds = mutate_dataset(seed_ds, rng)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        return ds
    path = workdir / f"mutant-{index % 64}.dcm"
    path.write_bytes(mutate_bytes(seed_bytes, rng))
    return path


def fuzz_stores(port: int, seeds: list[Path], count: int, *, workdir: Path, seed: int = 0,
                per_association: int = 50, dimse_timeout_s: float = 10.0) -> FuzzResult:
    """Send `count` mutants of `seeds`; a new association every `per_association` stores
    and whenever the listener ended the previous one. Mutated files travel as their bytes
    (pynetdicom's chunked send), so the listener parses exactly what was mutated."""
    chunked = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        return _fuzz(port, seeds, count, workdir=workdir, seed=seed,
                     per_association=per_association, dimse_timeout_s=dimse_timeout_s)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = chunked


def _fuzz(port: int, seeds: list[Path], count: int, *, workdir: Path, seed: int,
          per_association: int, dimse_timeout_s: float) -> FuzzResult:
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    originals = [(dcmread(path), path.read_bytes()) for path in seeds]
    ae, result, assoc = _sender(dimse_timeout_s), FuzzResult(), None
    started = time.monotonic()
    for index in range(count):
        if assoc is None or not assoc.is_established or index % per_association == 0:
            if assoc is not None and assoc.is_established:
                assoc.release()
            assoc = ae.associate("127.0.0.1", port, ae_title="BONEAGE")
            result.associations += 1
            if not assoc.is_established:
                result.no_response += 1
                assoc = None
                continue
        seed_ds, seed_bytes = originals[index % len(originals)]
        mutant = _mutant(seed_ds, seed_bytes, rng, workdir, index)
        sent = time.monotonic()
        try:
            status = assoc.send_c_store(mutant)
        except Exception:
            result.unsendable += 1  # raised on our side, before anything was sent
            continue
        result.slowest_s = max(result.slowest_s, time.monotonic() - sent)
        if "Status" in status:
            result.statuses[int(status.Status)] += 1
        else:
            result.no_response += 1
    if assoc is not None and assoc.is_established:
        assoc.release()
    result.elapsed_s = time.monotonic() - started
    return result
