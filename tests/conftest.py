"""Shared pytest fixtures: the repository's real angiograms, a private export cache, GPU detection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ANGIOGRAM_DIR = REPO_ROOT / "data" / "angiograms"


@pytest.fixture(scope="session", autouse=True)
def private_export_cache(tmp_path_factory):
    """Models exported during the tests go to a temporary cache, never the user's."""
    previous = os.environ.get("CATHTRACK_CACHE")
    os.environ["CATHTRACK_CACHE"] = str(tmp_path_factory.mktemp("export_cache"))
    yield
    if previous is None:
        os.environ.pop("CATHTRACK_CACHE", None)
    else:
        os.environ["CATHTRACK_CACHE"] = previous


@pytest.fixture(scope="session")
def angiogram_dir() -> Path:
    """The 80 real coronary angiograms (300x300 uint8) with vessel masks (`*_gt.png`)."""
    if not ANGIOGRAM_DIR.is_dir():
        pytest.fail(f"the repository's angiograms are missing: {ANGIOGRAM_DIR}")
    return ANGIOGRAM_DIR


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
