"""Hostile DICOM peers: malformed connections and mutated datasets, for tests and bench/fuzz.py.

A `Flood` opens many short TCP connections that never make a proper association: garbage
bytes, truncated or corrupted A-ASSOCIATE-RQ PDUs, silent sockets, PDUs that announce a huge
length. Each connection is closed by the sender within `hold_s`, the way the measured incident
went. Connections come from a loopback address of their own (127.0.0.2 by default), so that a
per-address limit on the listener can be told apart from the legitimate peer on 127.0.0.1.
"""

from __future__ import annotations

import copy
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

VERIFICATION = b"1.2.840.10008.1.1"
IMPLICIT_LE = b"1.2.840.10008.1.2"
APPLICATION_CONTEXT = b"1.2.840.10008.3.1.1.1"


def _item(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(payload)) + payload


def associate_rq(called: bytes = b"BONEAGE", calling: bytes = b"FLOOD",
                 abstract: bytes = VERIFICATION) -> bytes:
    """A well-formed A-ASSOCIATE-RQ PDU (PS3.8 9.3.2), the seed the mutations start from."""
    context = _item(0x20, bytes([1, 0, 0, 0]) + _item(0x30, abstract) + _item(0x40, IMPLICIT_LE))
    user = _item(0x50, _item(0x51, struct.pack(">I", 16384)))
    body = (struct.pack(">HH", 1, 0) + called.ljust(16) + calling.ljust(16) + bytes(32)
            + _item(0x10, APPLICATION_CONTEXT) + context + user)
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def _garbage(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(1, 512))


def _truncated(rng: random.Random) -> bytes:
    pdu = associate_rq()
    return pdu[:rng.randint(1, len(pdu) - 1)]


def _corrupted(rng: random.Random) -> bytes:
    pdu = bytearray(associate_rq())
    for _ in range(rng.randint(1, 8)):
        pdu[rng.randrange(len(pdu))] = rng.randrange(256)
    return bytes(pdu)


def _huge_length(rng: random.Random) -> bytes:
    """A PDU header that announces gigabytes, then a trickle."""
    return struct.pack(">BBI", rng.choice((0x01, 0x04)), 0, rng.randint(1 << 28, 0xFFFFFFFF)) \
        + rng.randbytes(rng.randint(0, 64))


def _silent(rng: random.Random) -> bytes:
    return b""


def _wrong_pdu_first(rng: random.Random) -> bytes:
    """A P-DATA-TF or A-RELEASE-RQ before any association."""
    return rng.choice((struct.pack(">BBIIBB", 0x04, 0, 6, 2, 1, 3),
                       struct.pack(">BBI", 0x05, 0, 4) + bytes(4)))


MALFORMED: dict[str, Callable[[random.Random], bytes]] = {
    "garbage": _garbage,
    "truncated_rq": _truncated,
    "corrupted_rq": _corrupted,
    "huge_length": _huge_length,
    "silent": _silent,
    "wrong_pdu_first": _wrong_pdu_first,
}


@dataclass
class FloodResult:
    sent: Counter[str] = field(default_factory=Counter)
    refused_at_connect: int = 0  # the listener closed or refused before we wrote
    closed_by_server: int = 0  # the listener closed the connection before we did
    elapsed_s: float = 0.0


def malformed_connection(port: int, kind: str, rng: random.Random, *, source: str,
                         hold_s: float, host: str = "127.0.0.1") -> str:
    """One hostile connection; says how it ended: refused, closed (by the server) or held."""
    payload = MALFORMED[kind](rng)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(hold_s + 1)
        try:
            sock.bind((source, 0))
            sock.connect((host, port))
            if payload:
                sock.sendall(payload)
        except OSError:
            return "refused"
        deadline = time.monotonic() + hold_s * rng.random()
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                if sock.recv(4096) == b"":
                    return "closed"
            except TimeoutError:
                break
            except OSError:
                return "closed"
    return "held"


def flood(port: int, count: int, *, concurrency: int = 25, seed: int = 0,
          source: str = "127.0.0.2", hold_s: float = 2.0,
          kinds: tuple[str, ...] = tuple(MALFORMED)) -> FloodResult:
    """`count` malformed connections, `concurrency` at a time."""
    result = FloodResult()
    lock = threading.Lock()
    started = time.monotonic()

    def one(index: int) -> None:
        rng = random.Random(seed * 1_000_003 + index)
        kind = kinds[index % len(kinds)]
        ended = malformed_connection(port, kind, rng, source=source, hold_s=hold_s)
        with lock:
            result.sent[kind] += 1
            result.refused_at_connect += ended == "refused"
            result.closed_by_server += ended == "closed"

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(count)))
    result.elapsed_s = time.monotonic() - started
    return result


# -- mutated datasets ------------------------------------------------------------------

def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """A Part 10 file with a few of its bytes changed, cut short, or a run duplicated."""
    buffer = bytearray(data)
    action = rng.choice(("flip", "flip", "truncate", "splice"))
    if action == "truncate":
        return bytes(buffer[:rng.randint(0, len(buffer) - 1)])
    if action == "splice":
        start = rng.randrange(len(buffer))
        run = buffer[start:start + rng.randint(1, 256)]
        at = rng.randrange(len(buffer))
        return bytes(buffer[:at] + run + buffer[at:])
    # Most of a radiograph is pixels; aim half the flips at the header where parsers live.
    header_end = min(len(buffer), 2048)
    for _ in range(rng.randint(1, 16)):
        limit = header_end if rng.random() < 0.5 else len(buffer)
        buffer[rng.randrange(limit)] = rng.randrange(256)
    return bytes(buffer)


def mutate_dataset(ds: Dataset, rng: random.Random) -> Dataset:
    """A dataset with one element removed, emptied or given a hostile value; still encodable,
    so it travels over a real association and tests the receiving side, not the sender.
    The copy has its own element table (pixels shared); every change replaces an element,
    never edits one, so the seed stays intact."""
    out = Dataset(dict(ds.items()))
    out.file_meta = copy.deepcopy(ds.file_meta)
    keyword = rng.choice(("PatientBirthDate", "PatientSex", "Rows", "Columns", "BitsAllocated",
                          "BitsStored", "PhotometricInterpretation", "BodyPartExamined",
                          "Modality", "StudyDate", "PixelSpacing", "WindowCenter",
                          "SamplesPerPixel", "PixelRepresentation", "HighBit",
                          "AccessionNumber", "PatientAge", "ViewPosition"))
    action = rng.choice(("delete", "empty", "hostile"))
    if keyword not in out:
        action = "hostile"
    if action == "delete":
        del out[keyword]
    elif action == "empty":
        # A new element: the copy is shallow, and the seed's own must stay intact.
        element = out[keyword]
        out[keyword] = DataElement(element.tag, element.VR, None)
    else:
        hostile: dict[str, object] = {
            "Rows": rng.choice((0, 1, 65535)), "Columns": rng.choice((0, 1, 65535)),
            "BitsAllocated": rng.choice((0, 1, 7, 64)), "BitsStored": rng.choice((0, 17, 40)),
            "HighBit": rng.choice((0, 31, 99)), "SamplesPerPixel": rng.choice((0, 3, 9)),
            "PixelRepresentation": rng.choice((1, 7)),
            "PhotometricInterpretation": rng.choice(("RGB", "YBR_FULL", "PALETTE COLOR", "??")),
            "PatientBirthDate": rng.choice(("29991231", "00000000", "1", "2O10O1O1")),
            "PatientSex": rng.choice(("X", "?", "MF")), "PatientAge": rng.choice(("999Y", "-1")),
            "StudyDate": rng.choice(("18000101", "99999999")),
            "PixelSpacing": rng.choice(([0, 0], [-1, 1], [1e9, 1e9])),
            "WindowCenter": rng.choice((-1e9, 1e12)),
            "BodyPartExamined": rng.choice(("CHEST", "SKULL", "", "HAND" * 4)),
            "Modality": rng.choice(("CT", "MR", "XX")),
            "AccessionNumber": "A" * rng.choice((16, 64)),
            "ViewPosition": rng.choice(("LAT", "??")),
        }
        value = hostile.get(keyword)
        if value is not None:
            element = ds.data_element(keyword) if keyword in ds else None
            if element is None:
                setattr(out, keyword, value)  # a new element: nothing shared to change
            else:
                out[keyword] = DataElement(element.tag, element.VR, value)
    return out
