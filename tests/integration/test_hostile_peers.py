"""The listener under hostile peers: a flood of malformed connections from one host must not
lock out the PACS, a silent connection is dropped by the ARTIM timer, and one address cannot
hold more than its share of the association slots. dcmtk's echoscu and storescu are the PACS.

Latencies are printed, not asserted (bench/fuzz.py reports them); what is asserted is that
every legitimate request succeeded while the flood ran.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time

import pytest

from tests.factory import write_image
from tests.hostile import MALFORMED, flood
from tests.peers import ServiceProcess, echoscu, storescu

pytestmark = pytest.mark.dcmtk


@pytest.fixture
def listener(tmp_path):
    """`boneage serve` receiving only (no processing): these tests are about the network."""
    started: list[ServiceProcess] = []

    def start(**env: str) -> ServiceProcess:
        service = ServiceProcess(tmp_path / "var", {"BONEAGE_EMBEDDED_WORKERS": "0", **env})
        started.append(service.start())
        return service

    yield start
    for service in started:
        service.stop()


def closed_by_server(port: int, *, source: str, wait_s: float) -> bool:
    """Connect, send nothing, and see whether the server hangs up within `wait_s`."""
    with socket.socket() as sock:
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.settimeout(wait_s)
        try:
            return sock.recv(1) == b""
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True


def test_a_flood_of_malformed_connections_does_not_lock_out_the_pacs(tmp_path, listener):
    service = listener()
    dx = tmp_path / "dx.dcm"
    write_image(dx, seed=5)
    result = {}
    flooding = threading.Thread(target=lambda: result.update(
        outcome=flood(service.port, 400, concurrency=25, seed=1, source="127.0.0.2")))
    echoes, stores, latencies = [], [], []
    flooding.start()
    while flooding.is_alive() or len(echoes) < 3:
        started = time.monotonic()
        echoes.append(echoscu(service.port).returncode)
        latencies.append(time.monotonic() - started)
        stores.append(storescu(service.port, dx).returncode)
    flooding.join()
    outcome = result["outcome"]
    print(f"flood: {sum(outcome.sent.values())} connections in {outcome.elapsed_s:.1f} s, "
          f"{outcome.closed_by_server} closed by the server; C-ECHO during it: "
          f"{len(latencies)}, median {statistics.median(latencies):.2f} s, "
          f"max {max(latencies):.2f} s")
    assert set(outcome.sent) == set(MALFORMED) and sum(outcome.sent.values()) == 400
    assert echoes == [0] * len(echoes)
    assert stores == [0] * len(stores)
    assert echoscu(service.port).returncode == 0  # and still answering afterwards
    assert "from 127.0.0.2 at accept" in service.log()


def test_a_silent_connection_is_dropped_by_the_artim_timer(listener):
    service = listener(BONEAGE_ARTIM_TIMEOUT_S="1")
    # pynetdicom's own default would hold it for 30 s.
    assert closed_by_server(service.port, source="127.0.0.1", wait_s=15)


def test_one_address_holds_at_most_its_share_of_the_slots(listener):
    service = listener(BONEAGE_MAX_ASSOCIATIONS_PER_PEER="2", BONEAGE_ARTIM_TIMEOUT_S="30")
    held = []
    try:
        for _ in range(2):
            sock = socket.socket()
            sock.bind(("127.0.0.3", 0))
            sock.connect(("127.0.0.1", service.port))
            held.append(sock)
        time.sleep(0.3)  # let the listener start both associations
        # A third from the same address is closed at accept; other peers are served.
        assert closed_by_server(service.port, source="127.0.0.3", wait_s=10)
        assert echoscu(service.port).returncode == 0
    finally:
        for sock in held:
            sock.close()
