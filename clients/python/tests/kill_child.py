"""The child of the SIGKILL test: one session of a rotating contract
(header-login, or device-credentials under the rotate policy) in a file
store, whose saves announce themselves on stdout and then block, so the
parent can kill the process right after the server answered a rotation
(before the save) or right after the save (before the token is used).

usage: kill_child.py SRC BASE CONTRACT CLIENT_ID USER PASSWORD STORE_DIR MODE
CONTRACT: header-login | device-credentials (CLIENT_ID: its client key)
MODE: none | before-save | after-save"""

import sys

sys.path.insert(0, sys.argv[1])

from tollgate_client import DeviceCredentials, FileStore, HeaderLogin, RefreshStore  # noqa: E402


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


base, contract, client_id, user, password, store_dir, mode = sys.argv[2:9]
wire = HeaderLogin(base, user, password) if contract == "header-login" \
    else DeviceCredentials(base, client_id, user, password)
source = wire.source(
    store=Announcing(FileStore(store_dir), mode), relogin=False, margin=1)
print("TOKEN", source.token(), flush=True)
