"""Shared fixtures: tests never touch the developer's own Jupyter kernels."""

import os
import resource

import pytest

# The test process itself holds many clients' sockets (a hundred argv lives each make a
# zmq context and five channels): a user's login limit of 1024 files is too few for it,
# though not for the kernels it checks. Its soft limit goes up to the hard one.
_SOFT, _HARD = resource.getrlimit(resource.RLIMIT_NOFILE)
if _HARD == resource.RLIM_INFINITY or _SOFT < _HARD:
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (_HARD if _HARD != resource.RLIM_INFINITY else 65536, _HARD)
    )


def pytest_addoption(parser):
    parser.addoption(
        "--engine",
        choices=("docker", "podman"),
        default="docker",
        help="where the integration tests run kernels: dockerd, or (as a user outside the "
        "docker group) that user's rootless Podman",
    )


# Kernels start in this process and its children unless a test asks for the user's
# warm-kernel agent (test_agent.py): each test's folder would otherwise get warm
# containers of its own that no later start uses.
os.environ["DISTROKERNELS_AGENT"] = "0"


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
