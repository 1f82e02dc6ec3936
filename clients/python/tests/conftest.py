"""Shared fixtures: the package from this checkout (unless installed), the
fake token server, and the real tollgate for the conformance tests."""

import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from fake import Fake  # noqa: E402  (after the path is set)


@pytest.fixture
def fake_factory():
    made = []

    def make(answer):
        f = Fake(answer)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()
