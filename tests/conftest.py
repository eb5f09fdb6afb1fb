"""Shared fixtures: tests never touch the developer's own Jupyter kernels."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def isolated_jupyter_dirs(tmp_path_factory):
    """Kernelspecs and runtime files of the tests live in a temporary Jupyter home."""
    home = tmp_path_factory.mktemp("jupyter")
    saved = {key: os.environ.get(key) for key in ("JUPYTER_DATA_DIR", "JUPYTER_PATH")}
    os.environ["JUPYTER_DATA_DIR"] = str(home / "data")
    os.environ["JUPYTER_PATH"] = str(home / "path")
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
