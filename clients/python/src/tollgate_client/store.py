"""Where refresh tokens outlive the process. A rotated refresh token is
saved here before the access token that came with it is handed out, so a
crash right after the server rotated loses nothing the server would not
take back within its retry leeway.

``FileStore`` (the default) keeps one file per session, 0600 in a 0700
directory, written atomically: a temporary file, fsync, rename, fsync of the
directory. Its files are the Rust crate's (``<md5 of the store key>.json``
holding ``{"key", "refresh_token"}``), so both can share a directory.
``MemoryStore`` keeps them for the process only. Subclass ``RefreshStore``
for anything else (a keychain, a database)."""

import json
import os
import secrets
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Dict, Optional, Union

from .errors import StoreError
from .keys import md5_hex


class RefreshStore(ABC):
    """Persistent refresh tokens by store key. ``save`` must be durable when
    it returns; raise ``StoreError`` (or any ``OSError``) on failure."""

    @abstractmethod
    def load(self, key: str) -> Optional[str]:
        """The refresh token saved under ``key``, if any."""

    @abstractmethod
    def save(self, key: str, token: str) -> None:
        """Saves ``token`` under ``key``, replacing what was there."""

    @abstractmethod
    def remove(self, key: str) -> None:
        """Forgets ``key`` (the session ended)."""


def default_dir() -> Optional[Path]:
    """``$XDG_STATE_HOME/tollgate-client``, else ``~/.local/state/tollgate-client``."""
    state = os.environ.get("XDG_STATE_HOME")
    if state:
        return Path(state) / "tollgate-client"
    home = os.environ.get("HOME")
    if home:
        return Path(home) / ".local" / "state" / "tollgate-client"
    return None


class FileStore(RefreshStore):
    """Refresh tokens in files, one per key, in ``directory``."""

    def __init__(self, directory: Union[str, Path, None] = None):
        if directory is None:
            directory = default_dir()
            if directory is None:
                raise StoreError("no directory for refresh tokens: set XDG_STATE_HOME or HOME")
        self.directory = Path(directory)

    def path_of(self, key: str) -> Path:
        return self.directory / f"{md5_hex(key)}.json"

    def load(self, key: str) -> Optional[str]:
        path = self.path_of(key)
        try:
            saved = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise StoreError(f"{path}: {e}") from e
        # A different key hashing to the same name is not ours.
        if not isinstance(saved, dict) or saved.get("key") != key:
            return None
        token = saved.get("refresh_token")
        return token if isinstance(token, str) else None

    def save(self, key: str, token: str) -> None:
        body = json.dumps({"key": key, "refresh_token": token}).encode()
        write_private_file(self.path_of(key), body)

    def remove(self, key: str) -> None:
        try:
            self.path_of(key).unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StoreError(str(e)) from e

    def __repr__(self) -> str:
        return f"FileStore({str(self.directory)!r})"


class MemoryStore(RefreshStore):
    """Refresh tokens for this process only (tests, short jobs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: Dict[str, str] = {}

    def load(self, key: str) -> Optional[str]:
        with self._lock:
            return self._tokens.get(key)

    def save(self, key: str, token: str) -> None:
        with self._lock:
            self._tokens[key] = token

    def remove(self, key: str) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._tokens)} tokens)"


def write_private_file(path: Path, body: bytes) -> None:
    """Writes ``body`` to ``path`` atomically and durably, readable by the
    owner only: a 0600 temporary file beside it, fsync, rename over
    ``path``, fsync of the directory. Readers see the old file or the new
    one, never half of either."""
    directory = path.parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise
        # The rename itself is durable only once the directory is.
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        raise StoreError(f"writing {path}: {e}") from e
