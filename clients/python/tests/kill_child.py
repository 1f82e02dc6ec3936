"""The child of the SIGKILL test: one header-login session in a file store,
whose saves announce themselves on stdout and then block, so the parent can
kill the process right after the server answered a rotation (before the
save) or right after the save (before the token is used).

usage: kill_child.py SRC BASE EMAIL PASSWORD STORE_DIR MODE
MODE: none | before-save | after-save"""

import sys

sys.path.insert(0, sys.argv[1])

from tollgate_client import FileStore, HeaderLogin, RefreshStore  # noqa: E402


class Announcing(RefreshStore):
    def __init__(self, inner: RefreshStore, mode: str):
        self.inner = inner
        self.mode = mode

    def load(self, key):
        return self.inner.load(key)

    def save(self, key, token):
        if self.mode == "before-save":
            print("ROTATED", token, flush=True)
            sys.stdin.readline()  # the parent kills us here
        self.inner.save(key, token)
        if self.mode == "after-save":
            print("SAVED", token, flush=True)
            sys.stdin.readline()

    def remove(self, key):
        self.inner.remove(key)


base, email, password, store_dir, mode = sys.argv[2:7]
source = HeaderLogin(base, email, password).source(
    store=Announcing(FileStore(store_dir), mode), relogin=False, margin=1)
print("TOKEN", source.token(), flush=True)
