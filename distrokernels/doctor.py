"""`distrokernels doctor`: what a kernel start needs, checked, each with its fix.

Each check is a line: what was looked at, whether it holds, and when it does not the
command that fixes it. It is where troubleshooting starts: the engine answers and this
user may use it, the runtime folder is private and short, each installed kernel's image
is on its engine with the lock its kernelspec records, each kernelspec's launcher
environment has the provisioner, no orphaned kernel container waits for `gc`; for Slurm
kernels, the controller, and each one's partition, staged image and runtime.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from . import agent_client, hostkernel, kernelspecs, locks, orphans, runtime, usage
from .engine import LABEL_LOCK_DIGEST, Engine, choose_engine, engine_url
from .errors import DistroKernelsError
from .ids import short_id
from .platforms import ARCHITECTURES
from .probe import read_userland
from .slurm import checks as slurm_checks

_PROVISIONER_CHECK = (
    "from importlib.metadata import entry_points; "
    "print('distrokernels' in entry_points(group='jupyter_client.kernel_provisioners').names)"
)
_LAUNCHER_TIMEOUT = 60.0  # seconds for a kernelspec's interpreter to answer


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str = ""
    fix: str = ""

    def line(self) -> str:
        text = f"{'ok  ' if self.ok else 'FAIL'}  {self.what}"
        text += f": {self.detail}" if self.detail else ""
        return text + (f"\n      fix: {self.fix}" if self.fix and not self.ok else "")


def run_checks() -> list[Check]:
    """Every check, in the order a kernel start meets them."""
    checks = [_runtime_folder(), _agent()]
    kernels = kernelspecs.installed_kernels()
    engines: dict[str, list[kernelspecs.InstalledKernel]] = {engine_url(choose_engine("auto")): []}
    for kernel in kernels:
        engines.setdefault(kernel.engine_url, []).append(kernel)
    for url, on_engine in engines.items():
        checks += list(_engine_checks(url, on_engine))
    checks += [_launcher(kernel) for kernel in kernels]
    checks += _slurm_checks(kernels)
    if kernels and (jupyter := _jupyter_on_path()) is not None:
        checks.append(jupyter)
    return checks


def _slurm_checks(kernels: list[kernelspecs.InstalledKernel]) -> list[Check]:
    """The controller, then each Slurm kernelspec's partition, image and runtime."""
    on_slurm = [kernel for kernel in kernels if kernel.setting("backend") == "slurm"]
    if not on_slurm:
        return []
    found = [slurm_checks.controller()]
    for kernel in on_slurm:
        found += slurm_checks.kernelspec(kernel.name, kernel.config)
    return [Check(*check) for check in found]


def _runtime_folder() -> Check:
    what = "runtime folder"
    try:
        root = runtime.runtime_root()
    except DistroKernelsError as error:
        return Check(what, False, error.what, error.fix)
    mode = stat.S_IMODE(root.stat().st_mode)
    longest = len(f"{root}{runtime.IPC_SAMPLE}")
    if longest > runtime.MAX_IPC_PATH:
        return Check(
            what,
            False,
            f"{root}: IPC paths of {longest} bytes, more than libzmq's {runtime.MAX_IPC_PATH}",
            "export XDG_RUNTIME_DIR=/run/user/$(id -u) (or another short folder of yours)",
        )
    return Check(what, True, f"{root} (mode {mode:o}, yours, IPC paths of {longest} bytes)")


def _agent() -> Check:
    what = "warm-kernel agent"
    if not agent_client.enabled():
        return Check(
            what, True, f"off ({agent_client.SWITCH}=0): clients outside a server start cold"
        )
    try:
        state = agent_client.ask({"op": "ping"})
    except (agent_client.AgentUnavailable, ValueError):
        return Check(what, True, "not running; the first kernel started outside a server starts it")
    return Check(
        what,
        True,
        f"pid {state.get('pid')}, {len(state.get('ready', []))} warm, "
        f"{len(state.get('runs', []))} kernels of argv clients",
    )


def _engine_checks(url: str, kernels: list[kernelspecs.InstalledKernel]) -> Iterator[Check]:
    where = url or os.environ.get("DOCKER_HOST", "") or "the default Docker engine"
    try:
        engine = Engine.connect(url)
        version = engine.api.version()
    except DistroKernelsError as error:  # not reachable, or not this user's to use
        yield Check(f"engine {where}", False, error.what, error.fix)
        return
    yield Check(f"engine {where}", True, _describe(engine, version))
    if engine.podman and (warning := engine.podman.storage_warning):
        yield Check(f"engine {where}: storage", False, warning.split(":")[0], warning)
    try:
        yield from _kernel_images(engine, kernels)
        yield from _host_kernel(engine, url, where, kernels)
        yield _orphans(engine, where)
        if kernels:
            total = usage.disk_usage(engine, kernels).total
            yield Check(
                f"disk on {where}", True, f"{total / 1e6:.0f} MB for {len(kernels)} kernel(s)"
            )
    except DistroKernelsError as error:
        yield Check(f"engine {where}", False, error.what, error.fix)


def _describe(engine: Engine, version: dict[str, object]) -> str:
    if engine.podman:
        rootless = "rootless" if engine.podman.rootless else "rootful"
        return (
            f"Podman {version.get('Version', '?')}, {rootless}, storage "
            f"{engine.podman.graph_driver}, cgroup {engine.podman.cgroup_version} "
            f"(delegated: {' '.join(engine.podman.controllers) or 'none'})"
        )
    return f"Docker Engine {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})"


def _kernel_images(engine: Engine, kernels: list[kernelspecs.InstalledKernel]) -> Iterator[Check]:
    for kernel in kernels:
        what = f"kernel {kernel.name}"
        reinstall = _reinstall(kernel)
        image = engine.find_image(kernel.runs)
        if image is None:
            gone = (
                kernel.image
                if kernel.runs == kernel.image
                else f"{short_id(kernel.runs)} ({kernel.image})"
            )
            yield Check(what, False, f"its image {gone} is not on its engine", reinstall)
            continue
        labelled = (image.get("Config", {}).get("Labels") or {}).get(LABEL_LOCK_DIGEST)
        try:
            recorded = locks.Lock.from_text(kernel.lock_text(), f"{kernel.name}'s lock").digest
        except DistroKernelsError as error:
            yield Check(what, False, error.what, reinstall)
            continue
        if labelled != recorded:
            yield Check(
                what,
                False,
                f"its kernel.lock ({short_id(recorded)}) is not its image's "
                f"({short_id(str(labelled))})",
                reinstall,
            )
            continue
        yield Check(what, True, f"{kernel.image}, lock {short_id(recorded)}")


def _host_kernel(
    engine: Engine, url: str, where: str, kernels: list[kernelspecs.InstalledKernel]
) -> Iterator[Check]:
    """The engine host's kernel, then whether it runs each kernel's userland."""
    host = hostkernel.engine_host(engine, url)
    emulated = [arch.label for arch in ARCHITECTURES if host.handler_for(arch) is not None]
    yield Check(
        f"host kernel of {where}",
        True,
        f"Linux {'.'.join(map(str, host.kernel))} on {host.arch.label}, vsyscall "
        f"{host.vsyscall or 'n/a'}, clone3 under seccomp: {host.clone3 or 'unknown'}, "
        f"binfmt handlers for {' '.join(emulated) or 'no other architecture'}",
    )
    userlands: dict[str, hostkernel.Userland] = {}
    for kernel in kernels:
        if engine.find_image(kernel.runs) is None:
            continue  # said above
        if kernel.runs not in userlands:
            userlands[kernel.runs] = read_userland(engine, kernel.runs)
        found = hostkernel.findings(userlands[kernel.runs], host, kernel.name)
        what = f"host runs {kernel.name}"
        if found:
            yield Check(what, False, found[0].why, found[0].fix)
        else:
            arch = userlands[kernel.runs].arch
            yield Check(what, True, arch.platform if arch else "an architecture not checked")


def _orphans(engine: Engine, where: str) -> Check:
    found = orphans.find(engine)
    if found:
        names = ", ".join(container.name for container in found[:3])
        return Check(
            f"orphans on {where}",
            False,
            f"{len(found)} kernel container(s) whose Jupyter process is gone ({names})",
            "distrokernels gc",
        )
    return Check(f"orphans on {where}", True, "none")


def _launcher(kernel: kernelspecs.InstalledKernel) -> Check:
    """kernel.json's argv runs the launcher on a host interpreter: it must still exist
    and have the provisioner (clients that ignore provisioners run exactly that)."""
    what = f"launcher of {kernel.name}"
    argv = kernel.spec.get("argv", [])
    python = next((arg for arg in argv if os.path.basename(arg).startswith("python")), "")
    fix = (
        f"distrokernels install {kernel.info.get('base') or 'IMAGE'} --name {kernel.name} --replace"
    )
    if not python or not os.access(python, os.X_OK):
        return Check(what, False, f"its interpreter {python or '(none)'} is gone", fix)
    return _has_provisioner(python, what, fix, f"{python} has no distrokernels provisioner")


def _has_provisioner(python: str, what: str, fix: str, missing: str) -> Check:
    """Whether the environment of ``python`` has the distrokernels provisioner."""
    try:
        answer = subprocess.run(
            [python, "-c", _PROVISIONER_CHECK],
            capture_output=True,
            text=True,
            timeout=_LAUNCHER_TIMEOUT,
            cwd="/",  # not this folder: a checkout here would answer for the environment
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as error:
        return Check(what, False, f"{python} did not answer ({error})", fix)
    if answer != "True":
        return Check(what, False, missing, fix)
    return Check(what, True, f"{python} has the distrokernels provisioner")


def _jupyter_on_path() -> Check | None:
    """The `jupyter` a user runs (lab, notebook, console) lists a distro kernel only if
    its environment has the provisioner; None when there is no `jupyter` on PATH."""
    jupyter = shutil.which("jupyter")
    if jupyter is None:
        return None
    try:
        with open(jupyter, "rb") as script:
            first = script.readline().decode(errors="replace")
    except OSError:
        return None
    python = first[2:].strip().split(" ")[0] if first.startswith("#!") else ""
    what = f"jupyter on PATH ({jupyter})"
    if not python or not os.access(python, os.X_OK):
        return None  # not a Python script's entry point: nothing to ask
    fix = f"{python} -m pip install distrokernels (in every Jupyter environment you use)"
    hidden = "its environment has no distrokernels provisioner: it hides the distro kernels"
    return _has_provisioner(python, what, fix, hidden)


def _reinstall(kernel: kernelspecs.InstalledKernel) -> str:
    base = kernel.info.get("base") or "IMAGE"
    engine = f" --engine {kernel.engine}" if kernel.engine != "docker" else ""
    return f"distrokernels install {base} --name {kernel.name} --replace{engine}"
