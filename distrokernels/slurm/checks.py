"""What `doctor` checks from the login node for Slurm kernels: the controller answers,
and for each Slurm kernelspec its partition exists, its image is staged for its runtime
in the private shared folder, and the runtime can run as this user (the subordinate ids
rootless Podman needs, Charliecloud's ch-run on PATH).

Each check is (what, ok, detail, fix); doctor.py prints them as its other lines.
"""

from __future__ import annotations

import getpass
import os
import shutil
import stat
import subprocess
from pathlib import Path

from ..config import validate_config
from ..errors import DistroKernelsError
from . import node
from .backend import JobRequest, job_request

SlurmCheck = tuple[str, bool, str, str]


def controller() -> SlurmCheck:
    """The Slurm controller answers this host."""
    what = "Slurm controller"
    if shutil.which("scontrol") is None:
        return (what, False, "scontrol is not on PATH", "run Jupyter on the cluster's login node")
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, check=False)
    if "is UP" not in ping.stdout:
        detail = (ping.stdout or ping.stderr).strip().splitlines()[-1:] or ["no answer"]
        return (what, False, detail[0], "ask the site's admins; `scontrol ping` must say UP")
    nodes = subprocess.run(
        ["sinfo", "--noheader", "--Node", "--format=%N %t"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split("\n")
    up = dict.fromkeys(
        line.split()[0] for line in nodes if line.split()[1:2] and "down" not in line
    )
    return (what, True, f"{ping.stdout.strip().splitlines()[0]}; nodes {', '.join(up)}", "")


def kernelspec(name: str, config: dict[str, object]) -> list[SlurmCheck]:
    """The checks of one Slurm kernelspec."""
    what = f"Slurm kernel {name}"
    try:
        checked = validate_config(config)
    except DistroKernelsError as error:
        return [(what, False, error.what, error.fix)]
    request = job_request(checked)
    found = [_folder(what, request.folder), _image(what, checked.image_id, request)]
    found.append(_runtime(what, request.runtime))
    if request.partition:
        listed = subprocess.run(
            ["sinfo", "--noheader", f"--partition={request.partition}", "--format=%P"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        found.append(
            (
                f"{what}: partition",
                bool(listed),
                request.partition if listed else f"no partition {request.partition!r}",
                "reinstall it with a --partition that `sinfo` lists",
            )
        )
    return found


def _folder(what: str, folder: str) -> SlurmCheck:
    try:
        status = os.lstat(folder)
    except FileNotFoundError:
        return (f"{what}: shared folder", True, f"{folder} (made at the first start)", "")
    private = stat.S_ISDIR(status.st_mode) and status.st_uid == os.getuid()
    private = private and not status.st_mode & 0o077
    return (
        f"{what}: shared folder",
        private,
        f"{folder} (mode {status.st_mode & 0o777:o})",
        f"chmod 700 {folder}: it holds your kernels' keys",
    )


def _image(what: str, image_id: str, request: JobRequest) -> SlurmCheck:
    path = (
        node.archive_path(request.images, image_id)
        if request.runtime == "podman"
        else node.directory_path(request.images, image_id)
    )
    return (
        f"{what}: staged image",
        os.path.exists(path),
        path,
        "reinstall the kernel (`distrokernels install ... --backend slurm --replace`), "
        "which stages it",
    )


def _runtime(what: str, runtime: str) -> SlurmCheck:
    if runtime == "charliecloud":
        found = shutil.which("ch-run")
        return (
            f"{what}: runtime",
            found is not None,
            f"Charliecloud {found or 'ch-run: not on PATH'}",
            "install Charliecloud on the nodes (Debian: charliecloud-runtime)",
        )
    user = getpass.getuser()
    table = Path("/etc/subuid")
    lines = table.read_text().splitlines() if table.exists() else []
    mapped = any(line.split(":")[0] in (user, str(os.getuid())) for line in lines)
    return (
        f"{what}: runtime",
        mapped and shutil.which("podman") is not None,
        "rootless Podman" + ("" if mapped else f": {user} has no range in /etc/subuid"),
        f"give {user} subordinate ids on every node (usermod --add-subuids/--add-subgids)",
    )
