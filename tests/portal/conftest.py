"""Fixtures of the portal's browser test: the real tollgate binary over
HTTPS (a throw-away certificate, so the portal's cookies are Secure and
__Host-), on SQLite, or on a fresh PostgreSQL database with
TG_TEST_STORE=postgres (TG_TEST_PG: the server, as for the Rust tests);
and headless Chromium through chromedriver, started as this machine's
docs say (fresh profile, no background traffic)."""

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TG_BIN", str(ROOT / "target" / "debug" / "tollgate"))
CHROMIUM = os.environ.get("TG_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TG_CHROMEDRIVER", "/usr/bin/chromedriver")


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qc", sql],
                   check=True, capture_output=True)


class Tollgate:
    def __init__(self, tmp: Path, database_url: str | None, extra: tuple = ()):
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
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
        if database_url:
            self.env["TOLLGATE_DATABASE_URL"] = database_url
        # The usage page shows what was flushed: flush often, not every 15 s.
        self.env["TOLLGATE_USAGE_FLUSH_INTERVAL"] = "1s"
        self.log_path = tmp / "server.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data),
             "--tls-cert", str(self.ca), "--tls-key", str(key), *extra],
            stdout=subprocess.DEVNULL, stderr=self.log, env=self.env,
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

    def cli(self, *args: str):
        out = subprocess.run([BIN, "--json", "--data-dir", str(self.data), *args],
                             check=True, capture_output=True, text=True, env=self.env)
        return json.loads(out.stdout) if out.stdout.strip() else None

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self.log.close()


@contextlib.contextmanager
def serve(extra: tuple = ()):
    """A tollgate server (`serve` with `extra` arguments) on a fresh store."""
    database_url = None
    base = None
    name = None
    if os.environ.get("TG_TEST_STORE") == "postgres":
        base = os.environ.get("TG_TEST_PG", "postgres://postgres@127.0.0.1:5432")
        name = "tg_portal_" + uuid.uuid4().hex[:12]
        psql(base + "/test", f"CREATE DATABASE {name}")
        database_url = f"{base}/{name}"
    with tempfile.TemporaryDirectory() as d:
        tg = Tollgate(Path(d), database_url, extra)
        # Trust the throw-away certificate process-wide (requests), until
        # this server stops (another one's may be trusted again then).
        before = os.environ.get("REQUESTS_CA_BUNDLE")
        os.environ["REQUESTS_CA_BUNDLE"] = str(tg.ca)
        try:
            yield tg
        finally:
            tg.stop()
            if before is None:
                os.environ.pop("REQUESTS_CA_BUNDLE", None)
            else:
                os.environ["REQUESTS_CA_BUNDLE"] = before
            if name:
                psql(base + "/test", f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture(scope="module")
def tollgate():
    with serve() as tg:
        yield tg


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="tg-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1200,900"]:
        opts.add_argument(a)
    # The throw-away certificate; the cookies' Secure flag still applies.
    opts.accept_insecure_certs = True
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)
