"""The user's warm-kernel agent, as the tests start, ask and stop it."""

import os
import signal
import time
from pathlib import Path

import pytest

from distrokernels import agent_client
from distrokernels.owners import process_start_time


def ping() -> dict | None:
    """The running agent's state, or None when none listens."""
    try:
        return agent_client.ask({"op": "ping"})
    except agent_client.AgentUnavailable:
        return None


def wait_for_ready_warm(count: int = 1, timeout: float = 90) -> list[str]:
    """The agent's ready warm containers, once there are ``count``."""
    deadline = time.monotonic() + timeout
    while True:
        state = ping()
        if state and len(state["ready"]) >= count:
            return state["ready"]
        assert time.monotonic() < deadline, f"no {count} warm containers: {state}"
        time.sleep(0.1)


def stop_agent(timeout: float = 60) -> None:
    """SIGTERM the agent, as a user would, and wait until it has removed what it kept."""
    state = ping()
    if state is None:
        return
    os.kill(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_start_time(state["pid"]):
        assert time.monotonic() < deadline, "the agent did not exit on SIGTERM"
        time.sleep(0.05)


@pytest.fixture
def agent(monkeypatch):
    """Clients started by this test use the user's agent; it is stopped afterwards."""
    stop_agent()
    monkeypatch.setenv(agent_client.SWITCH, "1")
    yield
    stop_agent()


def agent_log_tail(lines: int = 40) -> str:
    """The newest agent log's last lines: what a failing test shows of the agent."""
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    logs = sorted((state / "distrokernels" / "logs").glob("agent-*.log"), key=os.path.getmtime)
    if not logs:
        return "(no agent log)"
    return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:])
