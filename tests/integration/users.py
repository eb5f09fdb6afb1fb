"""Unprivileged users for the tests: created by root (as CI runs), each with a notebook
folder, running this checkout from a venv they can execute.

Root hides ownership bugs (everything root writes is root's anyway), and root reaches
every engine; these users are how the tests see what a real user sees.
"""

import os
import pwd
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = Path("/tmp/dk-tester-venv")
# What a user's kernel runs (a file written, its uid and folder printed), and the
# jupyter_client script that starts that kernel, runs CODE and shuts it down.
CODE = "import os; open('owned.txt', 'w'); print('UID', os.getuid(), os.getcwd())"

SCRIPT = textwrap.dedent(
    f"""
    import asyncio, os, sys
    from jupyter_client.manager import AsyncKernelManager

    async def main():
        manager = AsyncKernelManager(kernel_name=sys.argv[1])
        await manager.start_kernel(cwd=sys.argv[2])
        client = manager.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        out = []
        def hook(message):
            if message["msg_type"] == "stream":
                out.append(message["content"]["text"])
        await client.execute_interactive({CODE!r}, output_hook=hook, timeout=60)
        client.stop_channels()
        await manager.shutdown_kernel()
        print("".join(out), end="")

    asyncio.run(main())
    """
)

# Subordinate ids a rootless Podman user maps container uids to (beyond other users').
SUBID_COUNT = 65536


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("creating a test user needs root (CI runs as root)")
    for tool in ("runuser", "useradd", "usermod"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is needed to test as an unprivileged user")


def make_user(name: str, docker_group: bool) -> tuple[pwd.struct_passwd, Path]:
    """The user (in the docker group or not), and an empty notebook folder of theirs."""
    need_root()
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", name], check=True)
    if docker_group:
        subprocess.run(["usermod", "--append", "--groups", "docker", name], check=True)
    else:
        subprocess.run(["gpasswd", "--delete", name, "docker"], capture_output=True)
    account = pwd.getpwnam(name)
    work = Path(account.pw_dir) / "notebooks"
    work.mkdir(exist_ok=True)
    os.chown(work, account.pw_uid, account.pw_gid)
    (work / "owned.txt").unlink(missing_ok=True)
    return account, work


def give_subordinate_ids(account: pwd.struct_passwd) -> None:
    """/etc/subuid and /etc/subgid ranges (what rootless Podman needs), after every
    range already given, and the runtime folder a login session would create."""
    for kind, option in (("subuid", "--add-subuids"), ("subgid", "--add-subgids")):
        table = Path(f"/etc/{kind}")
        lines = table.read_text().splitlines() if table.exists() else []
        if any(line.split(":")[0] == account.pw_name for line in lines):
            continue
        first = max([100000] + [int(f) + int(n) for _, f, n in (x.split(":") for x in lines)])
        last = first + SUBID_COUNT - 1
        subprocess.run(["usermod", option, f"{first}-{last}", account.pw_name], check=True)
    runtime = runtime_dir(account)
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.chown(runtime, account.pw_uid, account.pw_gid)


def runtime_dir(account: pwd.struct_passwd) -> Path:
    return Path(f"/run/user/{account.pw_uid}")


def install_checkout(*extra: str) -> None:
    """This checkout in a venv every user can execute (not editable: a user may not
    reach the repository), with ``extra`` packages."""
    if not (VENV / "bin" / "python").exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(VENV)], check=True)
    subprocess.run([VENV / "bin" / "pip", "install", "-q", str(REPO), *extra], check=True)


def as_user(
    account: pwd.struct_passwd, *command: str, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``command`` as the user, in a clean environment like a login's."""
    environment = {
        "HOME": account.pw_dir,
        "PATH": f"{VENV}/bin:/usr/bin:/bin",
        "JUPYTER_DATA_DIR": f"{account.pw_dir}/.local/share/jupyter",
        "LANG": "C.UTF-8",
        "DISTROKERNELS_AGENT": "0",  # as the tests' own process (tests/conftest.py)
        **({"XDG_RUNTIME_DIR": str(runtime_dir(account))} if runtime_dir(account).is_dir() else {}),
        **(env or {}),
    }
    return subprocess.run(
        ["runuser", "-u", account.pw_name, "--", "env", "-i"]
        + [f"{key}={value}" for key, value in environment.items()]
        + list(command),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
    )


def assert_kernel_runs_as_user(
    account,
    work: Path,
    kernel_name: str,
    script: str = SCRIPT,
    tail: tuple[str, ...] = (),
    env: dict | None = None,
) -> None:
    (work / "owned.txt").unlink(missing_ok=True)
    run = as_user(account, "python", "-c", script, kernel_name, str(work), env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["UID", str(account.pw_uid), str(work), *tail]
    made = (work / "owned.txt").stat()
    assert (made.st_uid, made.st_gid) == (account.pw_uid, account.pw_gid)
