"""Notebook 6 as pip installs it: `pip install "notebook<7" distrokernels` in one venv.

That brings jupyter_client 7.4, which honours kernel provisioners (so the kernel runs
through DistroProvisioner, not argv) but predates some of jupyter_client 8's calls. The
test drives the real Notebook 6 server through its REST API and kernel websocket, as its
front end does: list, start, execute, interrupt, restart, shut down.
"""

import asyncio
import json
import os
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from tornado.websocket import websocket_connect

from distrokernels.engine import LABEL_KERNEL_ID

NB6_VENV = Path("/tmp/distrokernels-notebook-6")
REPOSITORY = Path(__file__).resolve().parents[2]
TOKEN = "distrokernels-test"
GONE_WITHIN = 10  # seconds


@pytest.fixture(scope="module")
def notebook_6() -> Path:
    """A venv with Notebook 6 and this checkout of distrokernels, as a user would make it."""
    python = NB6_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(NB6_VENV)], check=True)
    pip = subprocess.run(
        [python, "-m", "pip", "install", "-q", "notebook<7", "-e", str(REPOSITORY)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr
    versions = subprocess.run(
        [python, "-c", "import jupyter_client, notebook; print(jupyter_client.__version__, "
         "notebook.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert versions[0].startswith("7.") and versions[1].startswith("6."), versions
    return NB6_VENV / "bin"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Notebook6:
    """A running Notebook 6 server on loopback, and its REST API."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(
            [
                str(bin_dir / "jupyter-notebook"), "--no-browser", "--ip=127.0.0.1",
                f"--port={self.port}", f"--NotebookApp.token={TOKEN}",
                f"--notebook-dir={root}", "--NotebookApp.port_retries=0",
                *(["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                self.call("GET", "/api/status")
                return
            except OSError as error:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    stderr = self.process.stderr.read()
                    raise AssertionError(f"Notebook 6 did not start: {stderr}") from error
                time.sleep(0.2)

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if text else {}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class Channels:
    """A kernel's websocket, as Notebook 6's front end uses it."""

    def __init__(self, server: Notebook6, kernel_id: str) -> None:
        self.url = f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels?token={TOKEN}"
        self.session = uuid.uuid4().hex

    async def __aenter__(self) -> "Channels":
        self.socket = await websocket_connect(self.url)
        return self

    async def __aexit__(self, *exc) -> None:
        self.socket.close()

    async def execute(self, code: str, timeout: float = 60) -> tuple[str, dict]:
        """(stdout, execute_reply's content) of ``code``."""
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                  "session": self.session, "version": "5.3", "date": ""}  # fmt: skip
        content = {"code": code, "silent": False, "store_history": True,
                   "user_expressions": {}, "allow_stdin": False}  # fmt: skip
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content,
                   "channel": "shell", "buffers": []}  # fmt: skip
        await self.socket.write_message(json.dumps(message))
        output = []
        while True:
            raw = await asyncio.wait_for(self.socket.read_message(), timeout)
            assert raw is not None, "the kernel's websocket closed"
            reply = json.loads(raw)
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if reply["msg_type"] == "stream":
                output.append(reply["content"]["text"])
            if reply["msg_type"] == "execute_reply":
                return "".join(output), reply["content"]


async def test_notebook_6_as_pip_installs_it_runs_a_distro_kernel_through_its_rest_api(
    installed_kernel, notebook_6, engine, tmp_path
):
    server = Notebook6(notebook_6, tmp_path)
    before = {c.id for c in engine.kernel_containers()}
    try:
        _, specs = server.call("GET", "/api/kernelspecs")
        assert installed_kernel in specs["kernelspecs"]  # listed, not hidden
        # As its front end opens a notebook: a session, whose kernel runs in its folder.
        session = {"path": "lesson.ipynb", "type": "notebook", "kernel": {"name": installed_kernel}}
        status, created = server.call("POST", "/api/sessions", session)
        assert status == 201
        kernel = created["kernel"]
        async with Channels(server, kernel["id"]) as channels:
            output, reply = await channels.execute("import os; kept = 1; print(os.getcwd())")
            assert (reply["status"], output) == ("ok", f"{tmp_path}\n")
            sleeping = asyncio.ensure_future(channels.execute("import time; time.sleep(30)"))
            await asyncio.sleep(1)
            assert server.call("POST", f"/api/kernels/{kernel['id']}/interrupt")[0] == 204
            _, reply = await sleeping
            assert (reply["status"], reply["ename"]) == ("error", "KeyboardInterrupt")
        assert server.call("POST", f"/api/kernels/{kernel['id']}/restart")[0] == 200
        async with Channels(server, kernel["id"]) as channels:
            output, reply = await channels.execute("print('kept' in dir())")
            assert (reply["status"], output) == ("ok", "False\n")  # a new kernel
        assert server.call("DELETE", f"/api/sessions/{created['id']}")[0] == 204
        await _gone(engine, lambda c: c.labels.get(LABEL_KERNEL_ID) == kernel["id"])
    finally:
        server.stop()
    await _gone(engine, lambda c: c.id not in before)  # its warm containers went with it


async def _gone(engine, which) -> None:
    deadline = time.monotonic() + GONE_WITHIN
    while [c for c in engine.kernel_containers() if which(c)]:
        assert time.monotonic() < deadline, "a container outlived what it served"
        await asyncio.sleep(0.1)
