"""Debian's Chromium, headless, driven by Debian's chromedriver over the W3C WebDriver
protocol (plain HTTP with the standard library: no client library that could hide what the
browser did)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from tests.peers import free_port, need, port_open, stop_process, wait_for

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference


class Browser:
    def __init__(self, width: int = 1400, height: int = 1700) -> None:
        driver, chromium = shutil.which("chromedriver"), shutil.which("chromium")
        need(driver is not None and chromium is not None,
             "chromium and chromium-driver (Debian packages) not installed")
        self.port = free_port()
        self.process = subprocess.Popen([str(driver), f"--port={self.port}"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: port_open(self.port), 30)
        options = {"binary": chromium, "args": ["--headless=new", "--no-sandbox",
                                                "--disable-gpu", "--hide-scrollbars",
                                                f"--window-size={width},{height}"]}
        created = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}})
        self.session = f"/session/{created['sessionId']}"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                         method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["value"]

    def open(self, url: str) -> None:
        self._call("POST", f"{self.session}/url", {"url": url})

    def find(self, css: str) -> str:
        found = self._call("POST", f"{self.session}/element",
                           {"using": "css selector", "value": css})
        return str(found[ELEMENT])

    def text(self, css: str) -> str:
        return str(self._call("GET", f"{self.session}/element/{self.find(css)}/text"))

    def type(self, css: str, text: str) -> None:
        self._call("POST", f"{self.session}/element/{self.find(css)}/value", {"text": text})

    def click(self, css: str) -> None:
        self._call("POST", f"{self.session}/element/{self.find(css)}/click", {})

    def script(self, source: str) -> Any:
        return self._call("POST", f"{self.session}/execute/sync", {"script": source, "args": []})

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._call("GET", f"{self.session}/screenshot")))

    def close(self) -> None:
        try:
            self._call("DELETE", self.session)
        finally:
            stop_process(self.process)
