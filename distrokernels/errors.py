"""The errors distrokernels raises: each says what failed and what to do about it.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``; the
provisioner lets them propagate so Jupyter shows the same line in its error dialog.
"""

from __future__ import annotations


class DistroKernelsError(Exception):
    """Base class: a one-line message plus the action that fixes it."""

    exit_code = 1

    def __init__(self, what: str, fix: str = "") -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what}: {fix}" if fix else what)


class InvalidInput(DistroKernelsError):
    """A name, image reference or option the user typed is not acceptable."""

    exit_code = 2


class PlaintextRefused(InvalidInput):
    """A kernel reached over TCP cannot encrypt, and nobody accepted plaintext."""


class EngineUnavailable(DistroKernelsError):
    """The Docker engine cannot be reached."""

    exit_code = 3


class ImageNotFound(DistroKernelsError):
    """A base image is neither local nor pullable, or a kernel's image was deleted."""

    exit_code = 4


class KernelspecExists(DistroKernelsError):
    """Installing would overwrite a kernelspec the user did not ask to replace."""

    exit_code = 5


class KernelspecNotFound(DistroKernelsError):
    exit_code = 5


class BuildFailed(DistroKernelsError):
    """The dependency layer could not be built; carries the failing step's output."""

    exit_code = 6


class NoRecipe(DistroKernelsError):
    """The image has no python3 and no recipe knows how to install one."""

    exit_code = 7


class WheelResolutionFailed(DistroKernelsError):
    """pip on the host could not find wheels for the image's platform."""

    exit_code = 8


class BootstrapFailed(DistroKernelsError):
    exit_code = 9


class KernelStartFailed(DistroKernelsError):
    """The kernel's container exited or never became ready."""

    exit_code = 10


class NotebookFailed(DistroKernelsError):
    """A cell raised while ``distrokernels run`` executed a notebook."""

    exit_code = 11


class LockMismatch(DistroKernelsError):
    """A kernel rebuilt from a lock differs from what the lock records."""

    exit_code = 12


class HostCannotRun(DistroKernelsError):
    """The host's kernel cannot run the image's userland (architecture, libc, seccomp)."""

    exit_code = 14
