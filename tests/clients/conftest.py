"""Starts the real tollgate binary over HTTPS with a throw-away certificate
and a temporary data directory, for the client-side tests."""

import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TG_BIN", str(ROOT / "target" / "debug" / "tollgate"))


def clean_env() -> dict:
    """The environment without TOLLGATE_* (tollgate refuses unknown settings)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}


class Tollgate:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.data = tmp / "data"
        self.ca = tmp / "cert.pem"
        key = tmp / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "1", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(key), "-out", str(self.ca)],
            check=True, capture_output=True,
        )
        self.log_path = tmp / "server.log"
        self.log = open(self.log_path, "w")
        env = clean_env()
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data),
             "--tls-cert", str(self.ca), "--tls-key", str(key), "--contracts", "all"],
            stdout=subprocess.DEVNULL, stderr=self.log, env=env,
        )
        deadline = time.time() + 30
        while True:
            m = re.search(r" listening address=https://127\.0\.0\.1:(\d+)", self.log_path.read_text())
            if m:
                self.port = int(m.group(1))
                break
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("tollgate did not start:\n" + self.log_path.read_text())
            time.sleep(0.05)
        self.base = f"https://localhost:{self.port}"
        self.host = f"localhost:{self.port}"

    def cli(self, *args: str) -> dict:
        out = subprocess.run([BIN, "--json", "--data-dir", str(self.data), *args],
                             check=True, capture_output=True, text=True, env=clean_env())
        return json.loads(out.stdout)

    def client(self, *args: str) -> tuple[str, str]:
        v = self.cli("client", "create", *args)
        return v["client_id"], v["client_secret"]

    def sync(self) -> None:
        import requests
        requests.get(self.base + "/readyz", verify=str(self.ca), timeout=10).raise_for_status()

    def logs(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self.log.close()


@pytest.fixture(scope="session")
def tollgate():
    with tempfile.TemporaryDirectory() as d:
        tg = Tollgate(Path(d))
        # Trust the throw-away certificate process-wide (urllib, requests, OpenSSL).
        os.environ["SSL_CERT_FILE"] = str(tg.ca)
        os.environ["REQUESTS_CA_BUNDLE"] = str(tg.ca)
        tg.cli("api", "create", "mts-insight-tech", "--permission", "odds:read",
               "--package", "odds-basic=odds:read", "--token-lifetime", "600s")
        try:
            yield tg
        finally:
            tg.stop()
