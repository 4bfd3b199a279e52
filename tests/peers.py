"""Real peers for tests: dcmtk tools, a `boneage serve` subprocess, a private Redis.

Under CI=true a missing peer fails the test; on a developer machine it skips with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from service.audit.tables import Association, Instance, InstanceStatus

# pynetdicom installs its own echoscu/storescu into the venv: dcmtk's live in the system dirs.
SYSTEM_PATH = "/usr/bin:/usr/local/bin:/bin"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# For tests of the service's mechanics under load (fuzzing, chaos), where what is checked
# (statuses, audit rows, one SR and one report image each) does not depend on the bone age:
# the phantom-trained weights (EfficientNet-B0 at 160 px, one view) cost a fraction of the
# shipped model's 5-view assessment on two cores. The shipped model stays the default of every
# other service test, and tests/unit/test_real_model.py guards its figures.
PHANTOM_MODEL_ENV = {"BONEAGE_MODEL_DIR": str(
    Path(__file__).resolve().parents[1] / "models" / "weights" / "boneage-b0-phantom")}


def need(condition: bool, why: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required peer missing in CI: {why}")
    pytest.skip(why)


def tool(name: str) -> str:
    path = shutil.which(name, path=SYSTEM_PATH)
    need(path is not None, f"{name} (Debian package dcmtk/dicom3tools/redis-server) not installed")
    return str(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def boneage_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "worker", *args]


class ServiceProcess:
    """`boneage serve` on a free loopback port with its own var dir."""

    def __init__(self, var_dir: Path, env: dict[str, str]) -> None:
        self.var_dir = var_dir
        self.port = free_port()
        self.env = {
            **os.environ,
            "BONEAGE_VAR_DIR": str(var_dir),
            "BONEAGE_PORT": str(self.port),
            "BONEAGE_BIND": "127.0.0.1",
            "BONEAGE_LOG_LEVEL": "INFO",
            **env,
        }
        self.log_path = var_dir / "serve-stdout.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, **extra_env: str) -> ServiceProcess:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        env = {**self.env, **extra_env}
        log = self.log_path.open("ab")
        offset = len(self.log())
        self.process = subprocess.Popen(
            boneage_command("serve"), env=env, stdout=log, stderr=subprocess.STDOUT
        )
        # Ready when it says so (in what this start wrote): a probing TCP connect would itself
        # occupy an association slot until pynetdicom notices it closed.
        def ready() -> bool:
            return "listening as" in self.log()[offset:] or self.process.poll() is not None

        try:
            wait_for(ready, 60)
        finally:
            log.close()
        if self.process.poll() is not None:
            raise RuntimeError(f"boneage serve exited early:\n{self.log()}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None


class ApiProcess:
    """`boneage api` for a service under test, on its own free loopback port; `request`
    speaks HTTP to it with the standard library (no client that a test could fake)."""

    def __init__(self, service: ServiceProcess, token: str | None = None, **env: str) -> None:
        self.port = free_port()
        self.token = token
        self.env = {**service.env, "BONEAGE_API_PORT": str(self.port), **env}
        if token:
            self.env |= {"BONEAGE_ADMIN_TOKEN": token, "BONEAGE_API_BIND": "127.0.0.1"}
        self.log_path = service.var_dir / "api-stdout.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ApiProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(boneage_command("api"), env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)
        wait_for(lambda: self.process.poll() is not None or port_open(self.port), 60)
        if self.process.poll() is not None:
            raise RuntimeError(f"boneage api exited early:\n{self.log_path.read_text()}")
        return self

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = "",
                headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
        """(status, body, headers); `token=""` uses this API's token, None sends none."""
        import json
        import urllib.error
        import urllib.request

        token = self.token if token == "" else token
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read(), dict(error.headers)

    def json(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        import json

        status, content, _ = self.request(method, path, body, **kwargs)
        assert status < 300, (status, content[:500])
        return json.loads(content)

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


def process_memory(pid: int) -> dict[str, int] | None:
    """RSS, PSS (shared pages split among their sharers) and USS (pages only this process
    holds) in MB, from /proc; None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    fields = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()[1:]}
    return {"rss": fields["Rss"] // 1024, "pss": fields["Pss"] // 1024,
            "uss": (fields["Private_Clean"] + fields["Private_Dirty"]) // 1024}


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def echoscu(
    port: int, *, aec: str = "BONEAGE", aet: str = "ECHOSCU", extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("echoscu"), "-aet", aet, "-aec", aec, *extra, "127.0.0.1", str(port)],
        capture_output=True, text=True, timeout=60,
    )


def storescu(
    port: int,
    *files: Path,
    aet: str = "MODALITY",
    aec: str = "BONEAGE",
    extra: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("storescu"), "-aet", aet, "-aec", aec, *extra, "127.0.0.1", str(port),
         *map(str, files)],
        capture_output=True, text=True, timeout=300,
    )


class RedisServer:
    """A private redis-server on a free port, nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.start()

    def start(self, *, same_port: bool = False) -> None:
        """(Re)start, on a new free port unless `same_port` (a restart the clients ride out:
        with nothing on disk, every message it held is gone)."""
        workdir = self.workdir
        if not same_port:
            self.port = free_port()
        self.process = subprocess.Popen(
            [tool("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: port_open(self.port), 20)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class WorkerProcess:
    """`boneage worker` (a Celery worker) for a service under test, in its own process group
    so that `kill()` takes its pool children down with it, as a lost machine would."""

    def __init__(self, service: ServiceProcess, broker_url: str, name: str = "worker",
                 **env: str) -> None:
        self.env = {**service.env, "BONEAGE_BROKER_URL": broker_url, **env}
        self.log_path = service.var_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(boneage_command("worker"), env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        return self

    def kill(self) -> None:
        """SIGKILL to the whole worker: main process and pool children."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=30)
            with contextlib.suppress(ProcessLookupError):  # pool children left behind
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process = None


# -- the audit DB of a service under test, polled ----------------------------------------

def instances(sessions: sessionmaker[Session]) -> list[Instance]:
    with sessions() as session:
        query = select(Instance).options(selectinload(Instance.events)).order_by(Instance.id)
        return list(session.scalars(query))


def associations(sessions: sessionmaker[Session]) -> list[Association]:
    with sessions() as session:
        return list(session.scalars(select(Association).order_by(Association.id)))


def wait_rows(fetch, count: int, ready=lambda rows: True):
    """Poll until `fetch()` returns `count` rows that satisfy `ready`."""

    def done():
        rows = fetch()
        return rows if len(rows) == count and ready(rows) else None

    return wait_for(done, timeout=90)  # the first instance also waits for the model to load


def wait_status(
    sessions: sessionmaker[Session], count: int, *statuses: InstanceStatus
) -> list[Instance]:
    def done() -> list[Instance] | None:
        rows = instances(sessions)
        ok = len(rows) >= count and all(row.status in statuses for row in rows)
        return rows if ok else None

    return wait_for(done, timeout=90)  # the first instance also waits for the model to load
