"""What runs on the compute node: the job's supervisor, the runtime's command, the image.

The job is a small POSIX shell supervisor (``job_script``) that stays in its allocation
for the kernel's whole life: it runs the kernel each time the login side writes a
``run.N`` file into the kernel's private folder, writes ``exit.N`` when that kernel
exits, and ends when it finds ``stop``. So a restart reuses the allocation instead of
waiting in the queue again. It forwards SIGTERM from `scancel --batch --signal=TERM` to
the kernel, and SIGUSR2 as the kernel's SIGKILL (the shell itself must survive it).

The kernel runs in the node's unprivileged runtime, as the user, from the image that
`install` built, staged by id in the shared folder (``stage_image``):

- rootless Podman: ``images/<id>.tar`` (a `docker save` archive), loaded once per node
  when the node's storage lacks that id; host network (the node's address), user
  namespace keeping the user's uid, no capability, no-new-privileges, the pids limit;
- Charliecloud: ``images/<id>.ch``, a directory `ch-convert` made, run with `ch-run`
  (user namespace, no capability, no-new-privileges always, the host's network).

Either sees the notebook's folder at its own path as working folder, the kernel's
``io`` folder at /run/distrokernels, and the environment the provisioner allowed
(from a file: nothing in the node's process list but paths).
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..engine import Engine, KernelContainerSpec
from ..errors import BuildFailed
from .jobs import SlurmError

RUNTIMES = ("podman", "charliecloud")
IO = "io"  # the kernel's folder the container sees, at /run/distrokernels
ENV_FILE = "env"
OUTPUT = "job.out"
STOP = "stop"
_HOME = "/tmp"  # the kernel's home: a private /tmp (ch-run's, Podman's tmpfs)

_SUPERVISOR = r"""#!/bin/sh
# distrokernels kernel job: runs the kernel whenever its client asks, in this allocation.
K=%(folder)s
export PATH=/usr/local/bin:/usr/bin:/bin
USER="$(id -un)"; export USER
if [ -z "${XDG_RUNTIME_DIR:-}" ] && [ -O "/run/user/$(id -u)" ]; then
  XDG_RUNTIME_DIR="/run/user/$(id -u)"; export XDG_RUNTIME_DIR
fi
pid=
forward() { [ -n "$pid" ] && kernel_signal "$1"; }
trap 'forward TERM' TERM
trap 'forward INT' INT
trap 'forward KILL' USR2
echo "$SLURM_JOB_ID" > "$K/running"
n=0
while :; do
  while [ ! -e "$K/run.$n" ]; do
    [ -e "$K/stop" ] && exit 0
    sleep 0.05
  done
  . "$K/run.$n"
  kernel_start & pid=$!
  while :; do
    wait "$pid"; status=$?
    kill -0 "$pid" 2>/dev/null || break
  done
  pid=
  echo "$status" > "$K/exit.$n.new" && mv "$K/exit.$n.new" "$K/exit.$n"
  n=$((n + 1))
done
"""


def job_script(folder: str) -> str:
    """The job's supervisor for the kernel whose private folder is ``folder``."""
    return _SUPERVISOR % {"folder": shlex.quote(folder)}


def archive_path(images: str, image_id: str) -> str:
    """Where the Podman archive of ``image_id`` is staged."""
    return os.path.join(images, f"{_hex(image_id)}.tar")


def directory_path(images: str, image_id: str) -> str:
    """Where the Charliecloud directory of ``image_id`` is staged."""
    return os.path.join(images, f"{_hex(image_id)}.ch")


def _hex(image_id: str) -> str:
    return image_id.removeprefix("sha256:")


def environment_file(spec: KernelContainerSpec) -> str:
    """The kernel's environment, one NAME=value per line (values have no newline)."""
    env = dict(spec.environment, HOME=_HOME)
    return "".join(f"{key}={value}\n" for key, value in env.items() if "\n" not in value)


def run_file(spec: KernelContainerSpec, runtime: str, folder: str, images: str, name: str) -> str:
    """The ``run.N`` file: defines kernel_start and kernel_signal for the supervisor."""
    if runtime == "podman":
        return _podman(spec, folder, images, name)
    return _charliecloud(spec, folder, images)


def _binds(spec: KernelContainerSpec, folder: str) -> list[tuple[str, str, str]]:
    """(host, container, mode) of every bind, the kernel's io folder first."""
    binds = [(os.path.join(folder, IO), "/run/distrokernels", "rw")]
    for bind in spec.binds:
        host, container, mode = [*bind.split(":"), "rw"][:3]
        binds.append((host, container, mode))
    return binds


def _podman(spec: KernelContainerSpec, folder: str, images: str, name: str) -> str:
    q = shlex.quote
    image = spec.image
    options = [
        "--rm",
        f"--name={name}",
        "--network=host",
        # the user's uid the same inside (rootless only: root's Podman maps no one)
        *(["--userns=keep-id"] if not spec.user.startswith("0:") else []),
        f"--user={spec.user}",
        "--init",
        "--ulimit=host",  # the job's limits (Slurm's, or the submit host's), not Podman's
        "--cap-drop=all",
        *(f"--cap-add={cap}" for cap in spec.cap_add),
        *(f"--security-opt={opt}" for opt in spec.security_opt),
        *([f"--pids-limit={spec.pids_limit}"] if spec.pids_limit else []),
        f"--env-file={os.path.join(folder, ENV_FILE)}",
        f"--workdir={spec.working_dir}",
        f"--tmpfs={_HOME}:rw,exec,mode=1777",
        *(f"--volume={host}:{container}:{mode}" for host, container, mode in _binds(spec, folder)),
    ]
    command = shlex.join(["podman", "run", *options, image, *spec.command])
    return (
        "kernel_start() {\n"
        f"  podman image exists {q(image)} || podman load --quiet --input "
        f"{q(archive_path(images, image))} >&2 || exit 125\n"
        f"  exec {command}\n"
        "}\n"
        f'kernel_signal() {{ podman kill --signal "$1" {q(name)} >/dev/null 2>&1; }}\n'
    )


def _charliecloud(spec: KernelContainerSpec, folder: str, images: str) -> str:
    directory = directory_path(images, spec.image)
    binds = _binds(spec, folder)
    # ch-run binds onto existing paths only: the mount points are made in the image,
    # which is the user's own copy in the shared folder.
    points = shlex.join([directory + container for _, container, _ in binds])
    options = [
        "--unset-env=*",
        "--set-env",  # the image's own environment (ch/environment)
        f"--set-env={os.path.join(folder, ENV_FILE)}",
        "--private-tmp",
        *(f"--bind={host}:{container}" for host, container, _ in binds),
        f"--cd={spec.working_dir}",
        directory,
        "--",
        *spec.command,
    ]
    return (
        "kernel_start() {\n"
        f"  mkdir -p {points} 2>/dev/null\n"
        f"  exec {shlex.join(['ch-run', *options])}\n"
        "}\n"
        'kernel_signal() { kill -s "$1" "$pid" 2>/dev/null; }\n'
    )


def stage_image(
    engine: Engine, image_id: str, tag: str, runtime: str, images: str, engine_kind: str
) -> str:
    """Put the image where the nodes' runtime takes it from (once per image id); its path."""
    for folder in (os.path.dirname(images), images):  # the slurm folder: 0700 too
        os.makedirs(folder, mode=0o700, exist_ok=True)
    if runtime == "podman":
        target = archive_path(images, image_id)
        if not os.path.exists(target):
            with tempfile.NamedTemporaryFile(dir=images, suffix=".part", delete=False) as part:
                for chunk in engine.save_image(image_id):
                    part.write(chunk)
            os.replace(part.name, target)
        return target
    target = directory_path(images, image_id)
    if not os.path.isdir(target):
        _convert(tag, target, engine_kind)
    return target


def _convert(tag: str, target: str, engine_kind: str) -> None:
    """ch-convert's directory of ``tag``, made beside ``target`` then moved in place."""
    if shutil.which("ch-convert") is None:
        raise SlurmError(
            "`ch-convert` is not on PATH: the Charliecloud runtime needs it to stage the image",
            "install Charliecloud (Debian: charliecloud-builders), or use --runtime podman",
        )
    part = f"{target}.part"
    shutil.rmtree(part, ignore_errors=True)
    source = "podman" if engine_kind == "podman" else "docker"
    result = subprocess.run(
        ["ch-convert", "--no-clobber", "-i", source, "-o", "dir", tag, part],
        capture_output=True,
        text=True,
        env={**os.environ, "USER": os.environ.get("USER") or getpass.getuser()},
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(part, ignore_errors=True)
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise BuildFailed(
            f"ch-convert could not make the Charliecloud image of {tag}: {last[0]}",
            "check that `ch-convert -i docker` works for you, or use --runtime podman",
        )
    Path(part, "run", "distrokernels").mkdir(parents=True, exist_ok=True)
    os.replace(part, target)
