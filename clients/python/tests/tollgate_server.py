"""The real tollgate binary for the conformance tests, as
tests/clients/conftest.py runs it (TG_BIN, a temporary data directory, the
CLI with --json), over plain HTTP on a fixed port so that a test can stop
and restart it at the same address."""

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[3]
BIN = os.environ.get("TG_BIN", str(ROOT / "target" / "debug" / "tollgate"))


def clean_env() -> Dict[str, str]:
    """The environment without TOLLGATE_* (tollgate refuses unknown settings)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}


def serve_env() -> Dict[str, str]:
    """The server's: device credentials rotate their refresh tokens (the
    ``rotate`` policy), so both user contracts' rotations are tested."""
    return {**clean_env(), "TOLLGATE_DEVICE_CREDENTIALS_REFRESH_POLICY": "rotate"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tollgate:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.data = tmp / "data"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "server.log"
        self.log_path.touch()
        self.proc: Optional[subprocess.Popen] = None
        self.start()

    def start(self) -> None:
        offset = self.log_path.stat().st_size
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data),
             "--contracts", "all"],
            stdout=subprocess.DEVNULL, stderr=log, env=serve_env())
        log.close()
        deadline = time.time() + 30
        while True:
            with open(self.log_path) as f:
                f.seek(offset)
                if re.search(r" listening address=http://127\.0\.0\.1:\d+", f.read()):
                    return
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("tollgate did not start:\n" + self.logs())
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cli(self, *args: str) -> dict:
        out = subprocess.run([BIN, "--json", "--data-dir", str(self.data), *args],
                             check=True, capture_output=True, text=True, env=clean_env())
        return json.loads(out.stdout) if out.stdout.strip() else {}

    def client(self, *args: str) -> Dict[str, str]:
        return self.cli("client", "create", *args)

    def sync(self) -> None:
        import requests
        requests.get(self.base + "/readyz", timeout=10).raise_for_status()

    def logs(self) -> str:
        return self.log_path.read_text()

    def requests_of(self, client_id: str, outcomes: List[str]) -> int:
        """Token requests of ``client_id`` the server answered with one of
        ``outcomes`` (its request log: one line per request)."""
        pattern = re.compile(rf'client_id="?{re.escape(client_id)}"? outcome="?({"|".join(outcomes)})"?\b')
        return sum(1 for line in self.logs().splitlines() if pattern.search(line))

    def statuses(self, path: str, status: int) -> int:
        pattern = re.compile(rf"path={re.escape(path)} status={status}\b")
        return sum(1 for line in self.logs().splitlines() if pattern.search(line))
