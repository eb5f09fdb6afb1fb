"""Warm kernels: containers started ahead of time, handed out once, refilled behind.

A cold start pays for ``docker start`` and for Python importing ipykernel, IPython and
debugpy, most of a second on this machine kind. A warm container has paid both: it runs
the kernelspec's image with every hardening default, as the user, and a small waiter
(``WAITER``, on the image's Python) that has imported what ipykernel's start imports
and created no socket, read no key. It then waits on a FIFO in its own private folder
(a "slot" in the user's runtime folder) for one claim: the argv, working folder and
environment a cold start would have used. The waiter restores the environment it was
started with, applies the claim's (and what the imports set, as they would have after
it), ``chdir``s, sets ``sys.argv``, ``sys.orig_argv`` and ``sys.path[0]`` as
``python -m`` would have, and runs the module as ``__main__``. It was started with the
server's locale variables, so Python chose the same locale and encodings as a cold
start of that server's kernels does.

What differs from a cold container is only what must be fixed at creation: it mounts
the pool root (the server's ``root_dir``, else the home folder) instead of one notebook
folder, so that it can serve any notebook folder under the root; a start whose folder
is outside the root is cold. Like a cold container it mounts one folder of the runtime
root and nothing else of it: its slot, at the kernel's in-container folder. A claim
(a start, or a restart, which keeps the kernel's endpoints) moves the slot into the
kernel's folder as its ``io`` (runtime.py) and leaves a link in its place, so that the
container's label still leads `gc` to the kernel's folder.

The pool belongs to one long-lived process (a Jupyter server: a KernelManager with a
MultiKernelManager parent), keyed by everything that decides the container, so a
changed config, a reinstall or a rebuild never gets a stale container. Containers carry
the process's owner token, so `gc` and the next server's orphan sweep collect the pool
of a SIGKILLed server; an exiting server removes its own; `distrokernels remove` and a
reinstall remove the unclaimed containers of their kernelspec. A claimed container is
never handed out again (kernels hold state). Refills run on a thread, after starts have
gone quiet, so they never compete with the start they replace.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import owners, runtime
from .engine import (
    LABEL_KERNELSPEC,
    LABEL_OWNER,
    LABEL_POOL,
    LABEL_RUNTIME_DIR,
    Engine,
    KernelContainerSpec,
)
from .engines import remove_in_background, shared_engine
from .errors import DistroKernelsError
from .runtime import KERNEL_DIR, open_fifo, remove_tree, runtime_root

log = logging.getLogger(__name__)

CLAIM_FIFO = "claim"  # in the slot: exists once the waiter has imported and waits
_QUIET = 0.25  # seconds without a start in flight before a refill begins
_REFILL_RETRY = 5.0  # seconds before a failed refill is tried again
_REFILL_FAILURES = 3  # then the pool of that kernelspec stops refilling
_CLOSE_WAIT = 30.0  # seconds an exiting process waits for a refill in flight
_MAX_FOLDERS = 3  # folders per kernelspec with warm containers (the agent's; a server has one)
_READY_TIMEOUT = 60.0  # seconds a waiter may take to import before it counts as dead

# The waiter: Python 3.6+ (CentOS 7's), no f-strings beyond 3.6, nothing kept in
# __main__ that the kernel could see (its user namespace is a module of its own).
WAITER = r"""
import os, sys
_environ = dict(os.environ)
import json, runpy
import ipykernel.kernelapp
for _name in (  # what IPKernelApp.initialize imports, as of ipykernel 7 and IPython 9
    "ipykernel.debugger", "IPython.core.history", "IPython.core.debugger",
    "IPython.core.completerlib", "IPython.core.oinspect", "IPython.extensions.storemagic",
    "IPython.utils.wildcard", "tornado.platform.asyncio", "sqlite3", "pdb", "faulthandler",
):
    try:
        __import__(_name)
    except ImportError:
        pass
_imported = dict((k, v) for k, v in os.environ.items() if _environ.get(k) != v)
def _claimed(fifo):
    os.mkfifo(fifo + ".new", 0o600)
    os.rename(fifo + ".new", fifo)
    with open(fifo) as stream:
        claim = json.load(stream)
    os.chdir(claim["cwd"])
    os.environ.clear()
    os.environ.update(_environ)
    os.environ.update(claim["env"])
    os.environ.update(_imported)
    argv = claim["argv"]
    if hasattr(sys, "orig_argv"):
        sys.orig_argv = list(argv)
    sys.argv[:] = ["-m"] + argv[3:]
    sys.path[0] = os.getcwd() if sys.version_info >= (3, 7) else ""
    return argv[2]
runpy.run_module(_claimed(sys.argv[1]), run_name="__main__", alter_sys=True)
"""


def can_serve(command: list[str]) -> bool:
    """A warm container runs ``python -m MODULE ARGS``: other commands start cold."""
    return len(command) >= 3 and command[1] == "-m"


def waiter_command(python: str) -> list[str]:
    """The warm container's command: import what a kernel needs, then wait for a claim."""
    return [python, "-c", WAITER, f"{KERNEL_DIR}/{CLAIM_FIFO}"]


@dataclass(frozen=True)
class Template:
    """A kind of warm container: one kernelspec's, with one config, on one engine.

    ``spec`` is the container without its slot (command ``[python]``, no slot mount,
    no runtime-dir label, no name); ``for_slot`` completes it.
    """

    kernelspec: str
    engine_url: str
    spec: KernelContainerSpec
    runtime_root: str
    size: int

    @functools.cached_property
    def key(self) -> str:
        """What decides a warm container, as a digest: equal keys, interchangeable ones."""
        data = [self.kernelspec, self.engine_url, dataclasses.asdict(self.spec)]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def kind(self) -> tuple[str, str, str]:
        """What one template at a time serves: a kernelspec on an engine, in a folder (a
        server's root; outside a server, the folder a kernel starts in)."""
        return (self.engine_url, self.kernelspec, self.spec.working_dir)

    def to_json(self) -> dict[str, Any]:
        """This template as JSON (a client sends it to the warm-kernel agent)."""
        assert not self.spec.files and not self.spec.ports, "warm containers use IPC only"
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Template:
        """A template a client sent; DistroKernelsError when it is not one."""
        try:
            spec = KernelContainerSpec(**data["spec"])
            template = cls(**{**data, "spec": spec})
        except (KeyError, TypeError) as error:
            raise DistroKernelsError(f"not a warm-kernel template: {error}", "") from error
        if spec.files or spec.ports or not isinstance(template.size, int):
            raise DistroKernelsError("not a warm-kernel template", "")
        return template

    def owned_by(self, owner: str) -> Template:
        """This template with ``owner`` as its containers' owner (the agent's own token
        for a client's template: the containers are the agent's until claimed, and
        every client's template of one kind is then the same)."""
        labels = {**self.spec.labels, LABEL_OWNER: owner}
        return dataclasses.replace(self, spec=dataclasses.replace(self.spec, labels=labels))

    def for_slot(self, slot: str) -> KernelContainerSpec:
        """The container of one warm slot: the waiter, with only that slot mounted."""
        return dataclasses.replace(
            self.spec,
            command=waiter_command(self.spec.command[0]),
            binds=[*self.spec.binds, f"{slot}:{KERNEL_DIR}:rw"],
            labels={**self.spec.labels, LABEL_RUNTIME_DIR: slot},
            name=f"distrokernels-pool-{runtime.slot_token(slot)}",
        )


@dataclass(frozen=True)
class WarmContainer:
    """A started warm container and its slot (the folder it was given)."""

    id: str
    slot: str
    created: float = dataclasses.field(default_factory=time.monotonic, compare=False)

    @property
    def fifo(self) -> str:
        """The FIFO the waiter reads its claim from."""
        return os.path.join(self.slot, CLAIM_FIFO)

    @property
    def ready(self) -> bool:
        """The waiter has imported everything and waits for its claim."""
        return os.path.lexists(self.fifo)

    @property
    def gone(self) -> bool:
        """Its slot was removed (by `distrokernels remove`, a reinstall, or `gc`), or its
        waiter never got ready (a broken image, a killed container): a refill replaces it."""
        if not os.path.isdir(self.slot):
            return True
        return not self.ready and time.monotonic() - self.created > _READY_TIMEOUT


def hand_over(folder: str, argv: list[str], cwd: str, env: dict[str, str]) -> bool:
    """Send the claim to the waiter of the slot now at ``folder``; False when no waiter
    reads it (the container died or was removed). The FIFO is opened only if it is one
    of this user's, never through a link (runtime.open_fifo)."""
    claim = json.dumps({"argv": argv, "cwd": cwd, "env": env}).encode()
    fd = open_fifo(folder, CLAIM_FIFO)
    if fd is None:
        return False
    try:
        os.set_blocking(fd, True)  # a claim may exceed the pipe's atomic size
        os.write(fd, claim)
    except BrokenPipeError:
        return False
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(folder, CLAIM_FIFO))
    return True


def claimed(slot: str) -> bool:
    """A claimed slot is a link to the kernel's folder, its own folder moved in there."""
    return os.path.islink(slot)


class KernelPool:
    """The warm containers of one process, per template key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._warm: dict[str, collections.deque[WarmContainer]] = {}
        self._templates: dict[str, Template] = {}
        self._current: dict[tuple[str, str, str], str] = {}  # kind -> key
        self._refilling: dict[str, threading.Thread] = {}
        self._starts = 0
        self._last_start = 0.0
        self._closing = False

    # --- the start path: cheap, no engine call ------------------------------------

    def claim(self, template: Template) -> WarmContainer | None:
        """A ready container of this template, taken out of the pool; None: start cold.

        Containers of an older template of the same kernelspec (a changed config, a
        reinstall) are removed here, off the start path.
        """
        key = template.key
        found = None
        with self._lock:
            stale = self._make_current(template)
            queue = self._warm.setdefault(key, collections.deque())
            for warm in list(queue):
                if warm.gone:
                    queue.remove(warm)
                    stale.append(warm)
                elif warm.ready:
                    queue.remove(warm)
                    found = warm
                    break
        if stale:
            self.discard(template.engine_url, stale)
        return found

    @contextlib.contextmanager
    def start_in_flight(self) -> Iterator[None]:
        """Refills wait until no start has been in flight for a moment."""
        with self._lock:
            self._starts += 1
        try:
            yield
        finally:
            with self._lock:
                self._starts -= 1
                self._last_start = time.monotonic()

    def refill(self, template: Template) -> None:
        """Top the template's pool up to its size, on a thread, once starts are quiet."""
        key = template.key
        with self._lock:
            stale = self._make_current(template)
            running = self._refilling.get(key)
            full = len(self._warm.get(key, ())) >= template.size
            busy = self._closing or full or (running is not None and running.is_alive())
            if not busy:
                thread = threading.Thread(
                    target=self._refill, args=(key,), name=f"distrokernels-pool-{key}", daemon=True
                )
                self._refilling[key] = thread
        if stale:
            self.discard(template.engine_url, stale)
        if not busy:
            thread.start()

    def _make_current(self, template: Template) -> list[WarmContainer]:
        """Make ``template`` the one of its kind (under the lock); the containers this
        makes stale: an older template of that kind (a changed config, a reinstall), and
        the kinds of that kernelspec in folders used less recently than the last
        ``_MAX_FOLDERS``."""
        kind = template.kind
        stale = []
        old = self._current.pop(kind, None)
        if old is not None and old != template.key:
            stale += self._drop(old)
        self._current[kind] = template.key  # the most recently used last
        self._templates[template.key] = template
        same_kernelspec = [other for other in self._current if other[:2] == kind[:2]]
        for evicted in same_kernelspec[:-_MAX_FOLDERS]:
            stale += self._drop(self._current.pop(evicted))
        return stale

    def _drop(self, key: str) -> list[WarmContainer]:
        self._templates.pop(key, None)
        return list(self._warm.pop(key, ()))

    def _refill(self, key: str) -> None:
        failures = 0
        while True:
            with self._lock:
                template = self._templates.get(key)
                queue = self._warm.setdefault(key, collections.deque())
                if self._closing or template is None or len(queue) >= template.size:
                    return
                busy = self._starts > 0 or time.monotonic() - self._last_start < _QUIET
            if busy:
                time.sleep(_QUIET / 5)
                continue
            try:
                warm = self._create(template)
            except (DistroKernelsError, OSError) as error:
                failures += 1
                log.warning(
                    "distrokernels: a warm %s kernel failed: %s", template.kernelspec, error
                )
                if failures >= _REFILL_FAILURES:
                    return
                time.sleep(_REFILL_RETRY)
                continue
            with self._lock:
                keep = not self._closing and self._templates.get(key) is template
                if keep:
                    self._warm.setdefault(key, collections.deque()).append(warm)
            if not keep:
                _remove(shared_engine(template.engine_url), warm)

    @staticmethod
    def _create(template: Template) -> WarmContainer:
        slot = runtime.new_slot(template.runtime_root)
        try:
            engine = shared_engine(template.engine_url)
            container_id = engine.start_kernel_container(template.for_slot(slot))
        except BaseException:
            remove_tree(slot)
            raise
        return WarmContainer(container_id, slot)

    def discard(self, engine_url: str, warm: list[WarmContainer]) -> None:
        """Remove containers off the start path (stale ones, one whose waiter did not
        take its claim); the process waits for these removals at exit."""
        for container in warm:
            if not claimed(container.slot):
                remove_tree(container.slot)
            remove_in_background(engine_url, container.id, log)

    # --- inspection and the end ---------------------------------------------------

    def warm_ids(self, kernelspec: str | None = None, ready: bool = False) -> list[str]:
        """This process's ready (and, unless ``ready``, starting) containers (tests, the
        benchmark and the agent's ping; `list` asks the engine, for every process)."""
        with self._lock:
            return [
                warm.id
                for key, queue in self._warm.items()
                if kernelspec is None or self._templates[key].kernelspec == kernelspec
                for warm in queue
                if warm.ready or not ready
            ]

    def wait_until_warm(self, kernelspec: str, count: int, timeout: float = 60) -> None:
        """Block until ``count`` containers of ``kernelspec`` are ready."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                ready = sum(
                    warm.ready
                    for key, queue in self._warm.items()
                    if self._templates[key].kernelspec == kernelspec
                    for warm in queue
                )
            if ready >= count:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{ready} of {count} warm {kernelspec} kernels after {timeout} s"
                )
            time.sleep(0.05)

    def close(self) -> None:
        """Remove every unclaimed container (a server's exit); refills in flight first."""
        with self._lock:
            self._closing = True
            threads = list(self._refilling.values())
        for thread in threads:
            thread.join(_CLOSE_WAIT)
        with self._lock:
            warm = {key: list(queue) for key, queue in self._warm.items()}
            templates = dict(self._templates)
            self._warm.clear()
            self._refilling.clear()
            self._closing = False
        for key, containers in warm.items():
            template = templates.get(key)
            engine_url = template.engine_url if template else ""
            for container in containers:
                with contextlib.suppress(DistroKernelsError):
                    _remove(shared_engine(engine_url), container)


def _remove(engine: Engine, warm: WarmContainer) -> None:
    engine.remove_container(warm.id)
    if not claimed(warm.slot):
        remove_tree(warm.slot)


POOL = KernelPool()
atexit.register(POOL.close)


# --- the CLI's view: the unclaimed warm containers of this user, from any process -------


@dataclass(frozen=True)
class IdleWarm:
    """An unclaimed warm container of this user, as the engine lists it."""

    id: str
    kernelspec: str
    slot: str
    owner: str  # the process whose pool it is

    @property
    def serves(self) -> bool:
        """Whether a live process can still hand it out (not a dead server's leftover)."""
        return owners.owner_is_alive(self.owner)


def idle_warm_containers(engine: Engine) -> list[IdleWarm]:
    """Unclaimed warm containers whose slots are in this user's runtime folder."""
    root = runtime_root()
    found = []
    for container in engine.kernel_containers():
        labels = container.labels
        slot = labels.get(LABEL_RUNTIME_DIR, "")
        if LABEL_POOL not in labels or Path(slot).parent != root:
            continue
        if os.path.isdir(slot) and not claimed(slot):
            owner = labels.get(LABEL_OWNER, "")
            found.append(IdleWarm(container.id, labels.get(LABEL_KERNELSPEC, ""), slot, owner))
    return found


def drop_kernelspecs(engine: Engine, kernelspecs: set[str]) -> int:
    """Remove this user's unclaimed warm containers of ``kernelspecs`` (remove, reinstall).

    A server holding them finds their slots gone and starts cold, then refills.
    """
    dropped = 0
    for idle in idle_warm_containers(engine):
        if idle.kernelspec in kernelspecs:
            _remove(engine, WarmContainer(idle.id, idle.slot))
            dropped += 1
    return dropped
