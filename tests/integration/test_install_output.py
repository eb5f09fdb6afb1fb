"""An install a person can watch: what a terminal shows, what a pipe gets, what the log
keeps, and what a failure says. The terminal is a real pseudo-terminal, rendered by a
terminal emulator (pyte) into the lines a person would see; the rendering is saved under
test-artifacts/ to be looked at."""

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pyte

from .conftest import BASE, run_cli

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
COLUMNS, ROWS = 80, 24
MAX_LINES = 40


def on_a_terminal(*args: str, timeout: float = 900) -> tuple[int, list[str], list[str]]:
    """Run the command on an 80x24 pseudo-terminal: (exit code, every line the terminal
    showed, scrolled-off ones first, the screen while a layer was being built)."""
    screen = pyte.HistoryScreen(COLUMNS, ROWS, history=2000)
    stream = pyte.ByteStream(screen)
    controller, terminal = pty.openpty()
    os.set_blocking(controller, False)
    env = {**os.environ, "COLUMNS": str(COLUMNS), "LINES": str(ROWS), "TERM": "xterm-256color"}
    process = subprocess.Popen(
        [sys.executable, "-m", "distrokernels", *args],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
        close_fds=True,
    )
    os.close(terminal)
    during: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the command exited and closed the terminal
                break
            if not chunk:
                break
            stream.feed(chunk)
            shown = [line.rstrip() for line in screen.display]
            if any("building the layer" in line and "✓" not in line for line in shown):
                during = shown  # the last frame of the build, its latest line beside it
        elif process.poll() is not None:
            break
    code = process.wait(timeout=60)
    os.close(controller)
    scrolled = ["".join(char.data for char in row.values()).rstrip() for row in screen.history.top]
    lines = [*scrolled, *(line.rstrip() for line in screen.display)]
    while lines and not lines[-1]:
        lines.pop()
    return code, lines, during


def newest_log() -> Path:
    logs = Path.home() / ".local" / "state" / "distrokernels" / "logs"
    return max(logs.glob("install-*.log"), key=lambda path: path.stat().st_mtime)


def test_a_fresh_install_on_a_terminal_shows_phases_and_a_summary(engine, base_image):
    code, lines, during = on_a_terminal(
        "install", "debian:trixie", "--rebuild", "--name", "dk-test-watch", "--replace"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "install-on-a-terminal.txt").write_text("\n".join(lines) + "\n")
    (ARTIFACTS / "install-on-a-terminal-during-the-build.txt").write_text("\n".join(during))
    try:
        assert code == 0, "\n".join(lines)
        text = "\n".join(lines)
        assert len([line for line in lines if line.strip()]) <= MAX_LINES, text
        for phase in (
            "base image debian:trixie",
            "probing debian:trixie",
            "resolving wheels for Python 3.13",
            "building the layer debian-13:",
            "recording the lock",
            "writing the kernelspec dk-test-watch",
        ):
            assert any(phase in line and line.lstrip().startswith("✓") for line in lines), phase
        assert "installed Python 3.13 (Debian 13) as dk-test-watch" in text
        assert "open it  jupyter lab, then pick 'Python 3.13 (Debian 13)'" in text
        assert any("building the layer" in line for line in during)  # a live view, mid-build
        assert "  log      ~/.local/state/distrokernels/logs/install-" in text
        log = newest_log().read_text()
        assert re.search(r"^STEP \d+/\d+|^Step \d+/\d+", log, re.MULTILINE)  # the build
        assert "Saved" in log or "Successfully downloaded" in log  # pip's own output
        assert "\x1b" not in log and "\r" not in log
    finally:
        run_cli("remove", "dk-test-watch")


def test_a_piped_install_is_plain_lines_and_json_says_what_it_installed(installed_kernel):
    piped = run_cli("install", BASE, "--replace")
    assert piped.returncode == 0, piped.stderr
    assert "\x1b" not in piped.stderr
    assert re.search(r"^cache hit: distrokernels/debian-12:\w+ \(\d+\.\d s\)$", piped.stderr, re.M)
    assert "  open it  jupyter lab" in piped.stderr
    as_json = run_cli("install", BASE, "--replace", "--json")
    facts = json.loads(as_json.stdout)
    assert facts["name"] == installed_kernel and facts["python"].startswith("3.11")
    assert facts["image"].startswith("distrokernels/debian-12:") and facts["added_bytes"] > 0
    assert Path(facts["log"]).is_file()
    assert as_json.stderr == ""  # --json: the result only
    quiet = run_cli("install", BASE, "--replace", "--quiet")
    assert (quiet.stdout, quiet.stderr) == (f"{installed_kernel}\n", "")


def test_a_failing_build_shows_its_phase_the_tail_and_the_log_and_exits_6(installed_kernel):
    failed = run_cli("install", BASE, "--packages", "dk-no-such-package", "--name", "dk-test-nopkg")
    assert failed.returncode == 6, failed.stderr
    lines = failed.stderr.splitlines()
    assert "failed: building the extras layer" in lines
    assert any(
        line.startswith("  | ") and "Unable to locate package dk-no-such-package" in line
        for line in lines
    ), failed.stderr
    log = next(line for line in lines if line.startswith("the full log: "))
    assert Path(log.removeprefix("the full log: ")).expanduser().is_file()
    assert lines[-1].startswith("distrokernels: error: building")
    assert "dk-test-nopkg" not in run_cli("list").stdout


def test_json_of_list_and_images_holds_what_their_tables_show(installed_kernel):
    table = run_cli("list").stdout.splitlines()
    rows = json.loads(run_cli("list", "--json").stdout)
    assert [row["name"] for row in rows] == [line.split()[0] for line in table[1:]]
    for row in rows:
        line = next(line for line in table if line.startswith(row["name"] + " "))
        assert row["image"] in line and row["status"] in line
    disk = json.loads(run_cli("images", "--json").stdout)
    names = {kernel["name"] for kernel in disk["kernels"]}
    assert installed_kernel in names and disk["total"] > 0
