"""Test-wide settings: one thread per process, since pytest-xdist runs a process per core."""

from __future__ import annotations

import os

pytest_plugins = ["pytester"]

os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the CLI subprocesses the tests start

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # two processes of two spinning OpenMP threads each on two cores run ~10x slower


def pytest_collection_modifyitems(items: list) -> None:
    """Start the long trainings first, so that pytest-xdist's other worker runs the rest meanwhile."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reference features go to a cache of the test session's own, never to the user's ~/.cache/gancore."""
    monkeypatch.setenv("GANCORE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "gancore-cache"))
