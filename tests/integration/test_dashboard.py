"""The dashboard in a real browser: Debian's headless Chromium loads the page served by
`boneage api` after real instances went through `boneage serve` (one assessed and delivered
to dcmtk's storescp, one rejected, one destination down, one review), checks what the
rendered page shows, and keeps a screenshot under test-artifacts/."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pydicom import dcmread

from service.audit.tables import InstanceStatus
from tests.factory import phantom_file, write_image
from tests.peers import (
    ApiProcess,
    free_port,
    need,
    port_open,
    stop_process,
    storescu,
    tool,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.dcmtk

ARTIFACTS = Path(os.environ.get("BONEAGE_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[2] / "test-artifacts"))


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    need(path is not None, "chromium (Debian package chromium) not installed")
    return str(path)


def browse(url: str, *extra: str) -> str:
    done = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--virtual-time-budget=5000", *extra, url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Page(HTMLParser):
    """Text by element id, and the images' sources, from the DOM Chromium rendered."""

    VOID = frozenset({"img", "meta", "br", "input", "link", "hr", "rect"})

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.images: list[str] = []
        self._open: list[str | None] = []  # the id of each open element (None: none)
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "img":
            self.images.append(found.get("src") or "")
        if tag in self.VOID:
            return
        self._open.append(found.get("id"))
        if found.get("id"):
            self.text.setdefault(found["id"] or "", "")

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for key in filter(None, self._open):
            self.text[key] += data + " "


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_dashboard_shows_what_went_through(tmp_path, backend, start_service):
    pacs_port, down_port = free_port(), free_port()
    (tmp_path / "pacs").mkdir()
    pacs = subprocess.Popen([tool("storescp"), "-aet", "PACS", "-od", str(tmp_path / "pacs"),
                             str(pacs_port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for(lambda: port_open(pacs_port), 20)
    service = start_service(
        BONEAGE_DESTINATIONS=f"PACS@127.0.0.1:{pacs_port},DOWN@127.0.0.1:{down_port}")
    api = ApiProcess(service).start()
    try:
        hand = phantom_file(tmp_path / "hand", seed=6)
        ds = dcmread(hand)
        ds.AccessionNumber = "ACCDASH1"
        ds.save_as(hand)
        ramp = tmp_path / "ramp.dcm"
        write_image(ramp, seed=12)
        assert storescu(service.port, hand, ramp).returncode == 0
        rows = wait_status(backend.sessions(service.var_dir), 2,
                           InstanceStatus.ASSESSED, InstanceStatus.REJECTED)
        hand_id = next(r.id for r in rows if r.status is InstanceStatus.ASSESSED)
        wait_for(lambda: api.json("GET", "/stats")["deliveries_by_status"].get("DELIVERED")
                 == 3 and api.json("GET", "/stats")["failing_destinations"], 60)
        api.json("POST", f"/instances/{hand_id}/review", {"reader": "dr.c",
                                                         "bone_age_months": 96})
        page = Page(browse(api.url + "/", "--dump-dom"))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        browse(api.url + "/", f"--screenshot={shot}", "--window-size=1400,1700")
    finally:
        api.stop()
        stop_process(pacs)
    counts = page.text["counts"]
    assert "2 received" in counts and "1 assessed" in counts and "1 rejected" in counts
    assert "research model" in page.text["model"] and "not for diagnostic use" in \
        page.text["model"]
    recent = page.text["recent"]
    assert "ACCDASH1" in recent and "months" in recent and "REJECTED" in recent
    assert f"/instances/{hand_id}/report-image.png" in page.images
    assert page.text["reasons"].strip() and "nothing delivered" not in page.text.get(
        "latency-chart", "")
    assert f"DOWN@127.0.0.1:{down_port}" in page.text["failing"]
    assert "1 reviewed" in page.text["agreement"]
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:4] == b"\x89PNG"
