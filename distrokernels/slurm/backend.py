"""SlurmBackend: one kernel as one Slurm job of the user, restarts in its allocation.

The first start submits the job (its supervisor, node.py) and returns; the kernel is
launched once Slurm has placed the job: its connection file (the node's address, the
ports it had or 0 for any free one) and its ``run.N`` file are written into the
kernel's private folder on the shared file system, and the kernel, binding its ports,
writes the ones it got back into its connection file, where ``endpoint`` reads them.
A restart writes ``run.N+1`` into the same folder: the same job, no new wait in the
queue, the same ports. The private folder is ``<slurm_folder>/kernels/<kernel id>``,
0700 like every folder above it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal as signals
import stat
from dataclasses import dataclass
from pathlib import Path

from docker.utils import parse_bytes

from .. import connection, runtime
from ..backends import Endpoint, KernelBackend, KernelState
from ..config import KernelConfig
from ..engine import LABEL_KERNEL_ID, LABEL_KERNELSPEC, LABEL_OWNER, KernelContainerSpec
from ..errors import KernelStartFailed
from . import jobs, node

KERNELS = "kernels"
IMAGES = "images"
_SIGNALS: dict[int, str] = {signals.SIGTERM: "TERM", signals.SIGKILL: "USR2"}


@dataclass(frozen=True)
class JobRequest:
    """What a kernel's job asks Slurm for (the kernelspec's checked config)."""

    partition: str = ""
    time_limit: str = ""
    account: str = ""
    cpus: float | None = None
    memory_mb: int | None = None
    gres: str = ""
    constraint: str = ""
    runtime: str = "podman"
    folder: str = ""  # the user's private folder on the shared file system

    def sbatch_options(self, comment: jobs.JobComment, kernel_folder: str, cwd: str) -> list[str]:
        """sbatch's options: only names and sizes, never a key or the environment."""
        options = [
            f"--job-name=dk-{comment.kernelspec}"[:64],
            f"--comment={comment.text()}",
            f"--output={os.path.join(kernel_folder, node.OUTPUT)}",
            f"--chdir={cwd}",
            "--export=NONE",
            "--nodes=1",
            "--ntasks=1",
            "--no-requeue",
        ]
        optional = {
            "--partition": self.partition,
            "--time": self.time_limit,
            "--account": self.account,
            "--gres": self.gres,
            "--constraint": self.constraint,
            "--cpus-per-task": str(max(1, round(self.cpus))) if self.cpus else "",
            "--mem": f"{self.memory_mb}M" if self.memory_mb else "",
        }
        return options + [f"{name}={value}" for name, value in optional.items() if value]

    @property
    def images(self) -> str:
        """Where `install` staged the images, by id."""
        return os.path.join(self.folder, IMAGES)


def job_request(config: KernelConfig) -> JobRequest:
    """What the kernelspec's config asks Slurm for."""
    memory = parse_bytes(config.memory.lower()) // 2**20 if config.memory else None
    return JobRequest(
        partition=config.partition,
        time_limit=config.time_limit,
        account=config.account,
        cpus=config.cpus,
        memory_mb=memory,
        gres=config.gres,
        constraint="&".join(config.constraints),
        runtime=config.runtime,
        folder=config.slurm_folder_path,
    )


def private_folder(path: str) -> str:
    """``path`` made (0700) and checked: a real folder of this user's, no one else's."""
    with contextlib.suppress(FileExistsError):
        os.makedirs(path, mode=0o700)
    if not runtime.is_private(Path(path)):
        raise KernelStartFailed(
            f"{path} is not a private folder of yours", "chmod 700 it, or set another slurm_folder"
        )
    return path


_LONGEST_CONNECTION_FILE = 64 * 1024


def read_kernels_file(path: str) -> str:
    """A file the kernel writes (its io folder is the container's): hostile input, so
    a regular file only, never through a link, never waiting on a FIFO, and short."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        return file.read(_LONGEST_CONNECTION_FILE).decode()


def _write_private(path: str, text: str) -> None:
    """``text`` into ``path`` (0600), replacing it at once: no reader sees half a file,
    and a link planted there is replaced, never followed."""
    folder, name = os.path.split(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"{path}.part")
    runtime.write_new(folder, f"{name}.part", text.encode())
    os.replace(f"{path}.part", path)


class SlurmBackend(KernelBackend):
    """One kernel's Slurm job: submitted once, kept across restarts."""

    def __init__(self, request: JobRequest) -> None:
        super().__init__()
        self.request = request
        self.job: jobs.Job | None = None
        self.folder = ""
        self.address = ""
        self._run = -1  # the run.N of the current kernel
        self._launched = -1  # the last run.N written to the node
        self._spec: KernelContainerSpec | None = None

    # --- start ------------------------------------------------------------------------

    def start(self, spec: KernelContainerSpec) -> None:
        """Submit the job (unless this allocation still runs: a restart); the kernel
        itself is launched once the job runs (``_launch``)."""
        self._spec = spec
        if self.id is None or self._job_ended():
            self._submit(spec)
        self._run += 1

    def _submit(self, spec: KernelContainerSpec) -> None:
        labels = spec.labels
        comment = jobs.JobComment(
            labels[LABEL_OWNER], labels[LABEL_KERNELSPEC], labels[LABEL_KERNEL_ID]
        )
        kernels = private_folder(os.path.join(private_folder(self.request.folder), KERNELS))
        self.folder = os.path.join(kernels, comment.kernel_id)
        runtime.remove_tree(self.folder)  # an earlier job's, of this kernel
        private_folder(os.path.join(private_folder(self.folder), node.IO))
        self._run, self._launched, self.address = -1, -1, ""
        options = self.request.sbatch_options(comment, self.folder, spec.working_dir)
        self.id = jobs.submit(node.job_script(self.folder), options)
        self.job = None

    def _job_ended(self) -> bool:
        job = self._refresh()
        return job is None or job.ended

    def _refresh(self) -> jobs.Job | None:
        assert self.id is not None
        self.job = jobs.job(self.id)
        return self.job

    def _launch(self) -> None:
        """Once the job runs on its node: the kernel's files for run.N, which the
        supervisor is waiting for."""
        assert self._spec is not None and self.job is not None
        if self._launched == self._run or not self.job.node:
            return
        if not os.path.exists(os.path.join(self.folder, "running")):
            return  # placed, but its supervisor has not started yet
        self.address = self.address or jobs.node_address(self.job.node)
        spec = self._spec
        kernel = json.loads(spec.files[connection.DELIVERED_FILE])
        kept = self.published
        ports = {name: kept.get(port, 0) for name, port in connection.KERNEL_PORTS.items()}
        kernel.update(ports, ip=self.address, transport="tcp")
        _write_private(os.path.join(self.folder, node.IO, "kernel.json"), json.dumps(kernel))
        _write_private(
            os.path.join(self.folder, node.ENV_FILE),
            node.environment_file(spec),
        )
        name = f"dk-{spec.labels[LABEL_KERNEL_ID][:8]}-{self._run}"
        run = node.run_file(spec, self.request.runtime, self.folder, self.request.images, name)
        _write_private(os.path.join(self.folder, f"run.{self._run}"), run)
        self._launched = self._run

    # --- what runs --------------------------------------------------------------------

    def _exit_status(self) -> int | None:
        try:
            text = Path(self.folder, f"exit.{self._run}").read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return int(text) if text.lstrip("-").isdigit() else 1

    def state(self, shutting_down: bool = False) -> KernelState | None:
        """Pending (with Slurm's reason), running, or how the kernel or its job ended."""
        assert self.id is not None
        status = self._exit_status()
        if status is not None and shutting_down:
            return KernelState(False, status)
        job = self._refresh()
        if status is not None and not (job is not None and job.ended):
            return KernelState(False, status)  # the kernel exited; its job waits for a restart
        if job is None:
            return None
        if job.pending:
            return KernelState(True, None, waiting=job.why_pending())
        if job.ended:  # Slurm ended it (the kernel got its SIGTERM): say why
            ended = job.end_state
            why = jobs.WHY_ENDED.get(ended, f"its Slurm job ended ({ended})")
            return KernelState(
                False,
                None,
                f"{why} (job {self.id}, {ended})",
                "restart the kernel to submit a new job; a longer --time at install "
                "gives each job more",
                final=True,  # a new job would wait in the queue again: the user decides
            )
        self._launch()
        return KernelState(True, None)

    def endpoint(self) -> Endpoint | None:
        """The node's address and the ports the kernel bound, once it has written them."""
        if self._launched != self._run:
            return None
        try:
            written = json.loads(
                read_kernels_file(os.path.join(self.folder, node.IO, "kernel.json"))
            )
        except (OSError, ValueError):
            return None  # being rewritten by the kernel: the next look sees it
        if not isinstance(written, dict):
            return None
        names = connection.KERNEL_PORTS.items()
        ports = {port: int(written.get(name) or 0) for name, port in names}
        if not all(ports.values()):
            return None
        self.published = ports
        return Endpoint(self.address, ports)

    def signal(self, signum: int) -> bool:
        """TERM (and KILL, as SIGUSR2) to the job's supervisor, which passes it to the
        kernel; an interrupt is not a signal here (False: it goes as a message)."""
        if signum == signals.SIGINT:
            return False
        if self.id is not None and self._exit_status() is None:
            jobs.cancel(self.id, _SIGNALS.get(signum, "TERM"), batch=True)
        return True

    def logs(self, tail: int) -> str:
        """The last ``tail`` lines of the job's output (the runtime's and the kernel's)."""
        try:
            text = Path(self.folder, node.OUTPUT).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-tail:])

    def remove(self, keep_allocation: bool = False) -> None:
        """End the job and remove the private folder; for a restart (``keep_allocation``)
        the job stays and waits for the next run."""
        if self.id is None:
            return
        if keep_allocation and self._exit_status() is not None:
            return
        if keep_allocation:  # a kernel that still runs: killed, the job kept
            self.signal(signals.SIGKILL)
            return
        with contextlib.suppress(OSError):
            Path(self.folder, node.STOP).touch()
        jobs.cancel(self.id)
        runtime.remove_tree(self.folder)
        self.id = None
