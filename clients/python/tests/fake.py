"""A fake token server for the unit tests: ``http.server`` in a thread,
answering with a test-supplied function and recording every request (with
its arrival time) so tests can count and inspect them."""

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Tuple, Union
from urllib.parse import parse_qs, urlsplit

Answer = Tuple[int, Dict[str, str], Union[str, bytes, dict]]


@dataclass
class Seen:
    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)

    def form(self) -> Dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}

    def json(self) -> dict:
        return json.loads(self.body)


class Fake:
    def __init__(self, answer: Callable[[Seen], Answer]):
        self.answer = answer
        self.seen: List[Seen] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                parts = urlsplit(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, parts.path, parse_qs(parts.query),
                            {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(n))
                with fake.lock:
                    fake.seen.append(seen)
                status, headers, body = fake.answer(seen)
                if isinstance(body, dict):
                    body = json.dumps(body)
                    headers = {"Content-Type": "application/json", **headers}
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _any

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def count(self, path: str = "") -> int:
        with self.lock:
            return sum(1 for s in self.seen if s.path.startswith(path))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def jwt_like(exp: float, **claims: object) -> str:
    """An unsigned JWT-shaped token with ``exp`` (the client reads, never verifies)."""
    def b64(v: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(v).encode()).decode().rstrip("=")
    return f"{b64({'alg': 'none'})}.{b64({'exp': int(exp), **claims})}.sig"


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def next(self) -> int:
        with self.lock:
            self.n += 1
            return self.n
