"""The Slurm commands a kernel job needs, run as the user and parsed as data.

A kernel's job is named ``dk-<kernelspec>`` and commented with its owner token, its
kernelspec and kernel id (``JobComment``), so `squeue` says what it is and `gc` can tell
whose it is. Nothing secret is ever put in a job's name, comment, script or environment:
other users read them with `scontrol show job`. Every failing command becomes one
SlurmError line with what to do.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DistroKernelsError

TAG = "distrokernels"
SWEEP_URL = "slurm:"  # what a watchdog and the orphan sweep are told for Slurm kernels
_FIELD = re.compile(r"(?:^| )([A-Za-z][A-Za-z0-9_:/]*)=")
_TIMEOUT = 30.0  # seconds any one Slurm command may take (a busy controller is slow)
# Job states after which a job never runs again (scontrol's JobState).
ENDED = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)
# The reason of a job Slurm is ending, and the state it will end in.
_ENDING = {"TimeLimit": "TIMEOUT", "NodeDown": "NODE_FAIL", "InactiveLimit": "TIMEOUT"}
# What an ended job's state means for its kernel, as one line.
WHY_ENDED = {
    "TIMEOUT": "its Slurm job reached its time limit",
    "PREEMPTED": "its Slurm job was preempted",
    "NODE_FAIL": "its Slurm job's node failed",
    "BOOT_FAIL": "its Slurm job's node failed to boot",
    "DEADLINE": "its Slurm job reached its deadline",
    "OUT_OF_MEMORY": "its Slurm job ran out of memory",
    "CANCELLED": "its Slurm job was cancelled",
}


class SlurmError(DistroKernelsError):
    """A Slurm command failed, or Slurm is not reachable from here."""

    exit_code = 13


@dataclass(frozen=True)
class JobComment:
    """Whose a kernel job is: what its comment says."""

    owner: str
    kernelspec: str
    kernel_id: str

    def text(self) -> str:
        """The comment: no spaces, no secrets."""
        return f"{TAG};owner={self.owner};kernelspec={self.kernelspec};kernel={self.kernel_id}"

    @classmethod
    def parse(cls, text: str) -> JobComment | None:
        """None when the comment is not a distrokernels one."""
        tag, *fields = text.split(";")
        if tag != TAG:
            return None
        values = dict(field.partition("=")[::2] for field in fields)
        return cls(values.get("owner", ""), values.get("kernelspec", ""), values.get("kernel", ""))


@dataclass(frozen=True)
class Job:
    """One job as `scontrol show job` reports it."""

    id: str
    state: str  # PENDING, RUNNING, COMPLETED, TIMEOUT...
    reason: str  # why it is pending or ended (None when there is no reason)
    node: str  # the batch host, once it runs
    comment: str = ""
    exit_code: str = ""  # "status:signal"
    output: str = ""  # the job's StdOut file: in the kernel's private folder

    @property
    def pending(self) -> bool:
        """Waiting in the queue (or for its node to be configured)."""
        return self.state in ("PENDING", "CONFIGURING", "REQUEUED", "RESIZING")

    @property
    def end_state(self) -> str:
        """How it ended ('' while it has not): a job Slurm is ending (COMPLETING) for a
        reason counts as the state it ends in, so the kernel's death says why at once."""
        if self.state in ENDED:
            return self.state
        if self.state == "COMPLETING":
            return _ENDING.get(self.reason, "")
        return ""

    @property
    def ended(self) -> bool:
        """It will never run again."""
        return bool(self.end_state)

    def why_pending(self) -> str:
        """'pending: Resources' and the like, for the server's log."""
        reason = self.reason if self.reason not in ("", "None", "(null)") else "waiting"
        return f"pending: {reason}"


def parse_fields(line: str) -> dict[str, str]:
    """The Key=Value fields of one `scontrol -o` line (a value may hold spaces)."""
    matches = list(_FIELD.finditer(line))
    fields = {}
    for match, after in zip(matches, [*matches[1:], None], strict=True):
        end = after.start() if after else len(line)
        fields[match.group(1)] = line[match.end() : end].strip()
    return fields


def parse_job(line: str) -> Job:
    """A Job from its `scontrol -o show job` line."""
    fields = parse_fields(line)
    return Job(
        id=fields.get("JobId", ""),
        state=fields.get("JobState", ""),
        reason=fields.get("Reason", ""),
        node=fields.get("BatchHost", "") if fields.get("BatchHost") != "(null)" else "",
        comment=fields.get("Comment", "") if fields.get("Comment") != "(null)" else "",
        exit_code=fields.get("ExitCode", ""),
        output=fields.get("StdOut", ""),
    )


def _run(command: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which(command[0]) is None:
        raise SlurmError(
            f"`{command[0]}` is not on PATH: this machine is not a Slurm submit host",
            "run Jupyter on the cluster's login node, or install the Slurm client",
        )
    try:
        return subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise SlurmError(
            f"`{' '.join(command[:2])}` did not answer in {_TIMEOUT:.0f} s",
            "check the controller with `scontrol ping`",
        ) from error


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


def submit(script: str, options: list[str]) -> str:
    """Submit ``script`` (on standard input: nothing of it shows in `scontrol show job`)
    with sbatch ``options``; the job id."""
    result = _run(["sbatch", "--parsable", *options], stdin=script)
    if result.returncode != 0:
        raise SlurmError(
            f"sbatch refused the kernel's job: {_last_line(result)}",
            "check the kernelspec's partition, account, time limit and resources "
            "against `sinfo`, or reinstall it with other --partition/--time/--cpus",
        )
    return result.stdout.strip().split(";")[0]


def job(job_id: str) -> Job | None:
    """The job as Slurm reports it; None once Slurm has forgotten it."""
    result = _run(["scontrol", "--oneliner", "show", "job", job_id])
    if result.returncode != 0:
        if "Invalid job id" in result.stderr:
            return None
        raise SlurmError(f"scontrol could not report job {job_id}: {_last_line(result)}")
    line = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
    return parse_job(line) if line else None


def cancel(job_id: str, signal: str = "", batch: bool = False) -> None:
    """End the job, or send ``signal`` (to its batch shell only when ``batch``)."""
    signalled = [f"--signal={signal}"] if signal else []
    result = _run(["scancel", *signalled, *(["--batch"] if batch else []), job_id])
    gone = ("already completing or completed", "Invalid job id")
    if result.returncode != 0 and not any(text in result.stderr for text in gone):
        raise SlurmError(f"scancel could not reach job {job_id}: {_last_line(result)}")


def node_address(node: str) -> str:
    """The address Slurm reaches ``node`` at (its NodeAddr)."""
    result = _run(["scontrol", "--oneliner", "show", "node", node])
    fields = parse_fields(result.stdout.strip()) if result.returncode == 0 else {}
    return fields.get("NodeAddr") or node


def own_kernel_jobs() -> list[tuple[Job, JobComment]]:
    """This user's queued and running kernel jobs, with what their comments say."""
    if shutil.which("squeue") is None:
        return []
    result = _run(["squeue", "--noheader", f"--user={os.getuid()}", "--format=%i|%T|%N|%k"])
    found = []
    for line in result.stdout.splitlines() if result.returncode == 0 else []:
        job_id, state, node, comment = [*line.split("|", 3), "", "", ""][:4]
        parsed = JobComment.parse(comment.strip())
        if parsed is not None:
            found.append((Job(job_id.strip(), state.strip(), "", node.strip(), comment), parsed))
    return found


def collect(owner_is_gone: Callable[[str], bool]) -> list[Job]:
    """Cancel this user's kernel jobs whose owner is gone, and remove their private
    folders (where their output goes); the jobs cancelled."""
    cancelled = []
    for found, comment in own_kernel_jobs():
        if owner_is_gone(comment.owner):
            reported = job(found.id)
            cancel(found.id)
            if reported is not None and reported.output:
                remove_kernel_folder(os.path.dirname(reported.output), comment.kernel_id)
            cancelled.append(found)
    return cancelled


def remove_kernel_folder(folder: str, kernel_id: str) -> None:
    """A kernel's private folder, only if it is one: named for its kernel, in a
    ``kernels`` folder, a real folder of this user's (never through a link)."""
    path = Path(folder)
    if path.name != kernel_id or path.parent.name != "kernels" or not kernel_id:
        return
    try:
        status = path.lstat()
    except OSError:
        return
    if stat.S_ISDIR(status.st_mode) and status.st_uid == os.getuid():
        shutil.rmtree(path, ignore_errors=True)
