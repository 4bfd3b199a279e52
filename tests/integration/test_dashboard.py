"""The dashboard in a real browser: Debian's headless Chromium, driven by chromedriver, signs
in with the admin token and loads the page served by `boneage api` after real instances went
through `boneage serve` (one assessed and delivered to dcmtk's storescp, one rejected, one
destination down, one review); the test checks what the page shows, that the report-image
thumbnail really loaded, and keeps a screenshot under test-artifacts/."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread

from service.audit.tables import InstanceStatus
from tests.browser import Browser
from tests.databases import only_backend
from tests.factory import phantom_file, write_image
from tests.peers import (
    ApiProcess,
    free_port,
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
TOKEN = "dashboard-token-0123456789"


@only_backend("sqlite")
def test_dashboard_shows_what_went_through(tmp_path, backend, start_service):
    pacs_port, down_port = free_port(), free_port()
    (tmp_path / "pacs").mkdir()
    pacs = subprocess.Popen([tool("storescp"), "-aet", "PACS", "-od", str(tmp_path / "pacs"),
                             str(pacs_port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for(lambda: port_open(pacs_port), 20)
    service = start_service(
        BONEAGE_DESTINATIONS=f"PACS@127.0.0.1:{pacs_port},DOWN@127.0.0.1:{down_port}")
    api = ApiProcess(service, token=TOKEN).start()
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
        browser = Browser()
        try:
            check_page(browser, api, hand_id, down_port)
        finally:
            browser.close()
    finally:
        api.stop()
        stop_process(pacs)


def check_page(browser: Browser, api: ApiProcess, hand_id: int, down_port: int) -> None:
    browser.open(api.url + "/")
    assert "missing or wrong admin token" in browser.text("body")  # no token, no page
    browser.open(api.url + "/login")
    browser.type("input[name=token]", TOKEN)
    browser.click("button")
    wait_for(lambda: browser.script("return document.title") == "boneage-pacs dashboard", 20)
    counts = browser.text("#counts").replace("\n", " ")
    assert "2 received" in counts and "1 assessed" in counts and "1 rejected" in counts
    model = browser.text("#model")
    assert "research model" in model and "not for diagnostic use" in model
    recent = browser.text("#recent")
    assert "ACCDASH1" in recent and "months" in recent and "REJECTED" in recent
    images = wait_for(lambda: [src for src, width in browser.script(
        "return [...document.images].map(i => [i.getAttribute('src'), "
        "i.complete ? i.naturalWidth : 0])") if width > 0], 20)
    assert images == [f"/instances/{hand_id}/report-image.png"]  # it loaded, through the cookie
    assert browser.text("#reasons") and browser.script(
        "return document.querySelectorAll('#latency-chart rect').length") >= 1
    assert f"DOWN@127.0.0.1:{down_port}" in browser.text("#failing")
    assert "1 reviewed" in browser.text("#agreement")
    shot = ARTIFACTS / "dashboard.png"
    browser.screenshot(shot)
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:4] == b"\x89PNG"
