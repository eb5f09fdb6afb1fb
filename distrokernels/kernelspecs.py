"""Write, read and remove distrokernels' kernelspecs through jupyter_client.

A kernelspec is the whole contract with Jupyter: the host launcher as argv (for clients
that ignore provisioners), the in-container command in the provisioner's config, signal
interrupts, and metadata that shows which distro a kernel runs without a terminal.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from . import PROVISIONER_NAME
from .checks import require
from .config import KernelConfig
from .connection import supports_curve
from .dockerfiles import KERNEL_PYTHON
from .engine import engine_url
from .errors import InvalidInput, KernelspecExists, KernelspecNotFound
from .images import KernelImage

LOCK_FILE = "kernel.lock"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def default_name(image: KernelImage) -> str:
    """'distro-debian-12'."""
    return f"distro-{image.slug}"


def default_display_name(image: KernelImage) -> str:
    """'Python 3.11 (Debian 12)'."""
    major_minor = ".".join(image.python_version.split(".")[:2])
    return f"Python {major_minor} ({image.display_name})"


def validate_name(name: str) -> str:
    """``name`` if it is a kernelspec name Jupyter accepts, else InvalidInput."""
    return require(
        _NAME,
        name,
        "a valid kernelspec name",
        "use lower-case letters, digits, '.', '_' and '-' (at most 64), e.g. distro-debian-12",
    )


def validate_display_name(display_name: str) -> str:
    if (
        not display_name.strip()
        or len(display_name) > 128
        or any(ord(char) < 32 for char in display_name)
    ):
        raise InvalidInput(
            "the display name must be 1 to 128 printable characters on one line",
            "pass --display-name 'Python 3.11 (Debian 12)' or leave it out",
        )
    return display_name


def banner(image: KernelImage) -> str:
    """'Debian GNU/Linux 12 (bookworm) userland via distrokernels (distrokernels/...)'."""
    return f"{image.label('distro')} userland via distrokernels ({image.tag})\n"


def launcher_argv(name: str, python: str = sys.executable) -> list[str]:
    """kernel.json's argv: the host launcher, for clients that run argv themselves.

    ``python`` is the installing environment's interpreter, absolute, so neither PATH nor
    an activated virtualenv matters. The shell only checks that it still exists, to say
    what to do instead of a bare "No such file or directory".
    """
    return ["/bin/sh", "-c", _LAUNCHER_SCRIPT, python, "--name", name, "-f", "{connection_file}"]


_LAUNCHER_SCRIPT = (
    'if [ -x "$0" ]; then exec "$0" -m distrokernels.launcher "$@"; fi; '
    'echo "distrokernels: error: kernel $2 runs through $0, which is gone: reinstall '
    "distrokernels there, or reinstall the kernel from the environment you use now "
    '(distrokernels install IMAGE --name $2 --replace)" >&2; exit 127'
)


def container_argv(image: KernelImage) -> list[str]:
    """The kernel's command inside the container, which the provisioner runs."""
    return [
        # Absolute: jupyter_client would replace a bare 'python' with the host's.
        KERNEL_PYTHON,
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
        # kernel_info's banner (JupyterLab's "Kernel information") names the userland.
        f"--InteractiveShell.banner2={banner(image)}",
    ]


def kernelspec_json(
    image: KernelImage,
    name: str,
    display_name: str,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The kernel.json for ``image``. Pure, so it is unit-tested as data.

    One kernelspec serves both paths: jupyter_client >= 7 hands the start to
    DistroProvisioner, which runs ``container_argv``; every other client runs ``argv``,
    the host launcher, which runs the same container through the same provisioner.
    """
    ipykernel = image.label("ipykernel")
    config = {
        "image": image.tag,
        "image_id": image.id,
        **(config or {}),
        "container_argv": container_argv(image),
    }
    return {
        "argv": launcher_argv(name),
        "display_name": display_name,
        "language": "python",
        # ipykernel < 6.2 has no interrupt_request handler; a signal works for all.
        "interrupt_mode": "signal",
        "env": {},
        "metadata": {
            "debugger": ipykernel.split(".")[0].isdigit() and int(ipykernel.split(".")[0]) >= 6,
            # jupyter_client's transport_encryption=auto|required reads this.
            **({"supported_encryption": ["curve"]} if supports_curve(ipykernel) else {}),
            "kernel_provisioner": {
                "provisioner_name": PROVISIONER_NAME,
                "config": config,
            },
            "distrokernels": {
                "distro": image.label("distro"),
                "os_id": image.label("os-id"),
                "os_version": image.label("os-version"),
                "python": image.python_version,
                "ipykernel": ipykernel,
                "libc": image.label("libc"),
                "platform": image.platform_name,
                "image": image.tag,
                "image_id": image.id,
                "base": image.label("base-ref"),
                "base_image_id": image.label("base-image"),
                "lock_digest": image.label("lock-digest"),
                "extras_pip": image.label("extras-pip"),
                "extras_packages": image.label("extras-packages"),
            },
        },
    }


def _logo(image: KernelImage, size: int) -> Any:
    logos = resources.files("distrokernels.kernelspec_assets") / "logos"
    for key in (image.label("os-id"), image.family, "linux"):
        candidate = logos / f"{key}-{size}x{size}.png"
        if key and candidate.is_file():
            return candidate
    raise FileNotFoundError("the generic logo linux-*.png is missing from the package")


@dataclass(frozen=True)
class InstalledKernel:
    name: str
    resource_dir: str
    spec: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        """The settings kernel.json records (``metadata.kernel_provisioner.config``)."""
        config: dict[str, Any] = (
            self.spec.get("metadata", {}).get("kernel_provisioner", {}).get("config", {})
        )
        return config

    def setting(self, name: str) -> Any:
        """A setting as the kernel's starts read it: recorded, else KernelConfig's default
        (an unknown name is a KeyError, not a silent default)."""
        trait = KernelConfig.class_traits()[name]
        return self.config[name] if name in self.config else trait.default()

    @property
    def image(self) -> str:
        """The tag the kernel runs: content-addressed (the lock digest), so it stays exact
        even when a rebuild of the same content gives the image a new id."""
        return str(self.setting("image") or self.setting("image_id"))

    @property
    def runs(self) -> str:
        """What its kernels run: the exact build the kernelspec recorded (its image id),
        or, for a kernelspec from before ids were recorded, its tag."""
        return str(self.setting("image_id") or self.image)

    @property
    def docker_host(self) -> str:
        """The engine the kernel runs on; '' for the default one."""
        return str(self.setting("docker_host"))

    @property
    def engine(self) -> str:
        """'docker' or 'podman'."""
        return str(self.setting("engine"))

    @property
    def engine_url(self) -> str:
        """Where its engine answers for this user ('' for the default Docker engine)."""
        return engine_url(self.engine, self.docker_host)

    @property
    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = self.spec.get("metadata", {}).get("distrokernels", {})
        return info

    def lock_text(self) -> str:
        path = Path(self.resource_dir) / LOCK_FILE
        if not path.is_file():
            raise KernelspecNotFound(
                f"kernel {self.name!r} has no {LOCK_FILE}",
                f"reinstall it: distrokernels install {self.info.get('base') or 'IMAGE'} --replace",
            )
        return path.read_text()


def refuse_existing(name: str) -> None:
    existing = KernelSpecManager().find_kernel_specs().get(name)
    if existing:
        raise KernelspecExists(
            f"a kernelspec named {name!r} already exists at {existing}",
            "pass --replace to overwrite it, or --name to choose another name",
        )


def install(
    image: KernelImage,
    name: str,
    display_name: str,
    config: dict[str, Any] | None = None,
    user: bool = True,
    prefix: str | None = None,
    replace: bool = False,
) -> str:
    """Register the kernelspec; returns its folder. Refuses to clobber unless ``replace``."""
    validate_name(name)
    validate_display_name(display_name)
    manager = KernelSpecManager()
    if not replace:
        refuse_existing(name)
    spec = kernelspec_json(image, name, display_name, config)
    with tempfile.TemporaryDirectory(prefix="distrokernels-spec-") as tmp:
        folder = Path(tmp) / name
        folder.mkdir()
        (folder / "kernel.json").write_text(json.dumps(spec, indent=2) + "\n")
        if image.lock is not None:
            (folder / LOCK_FILE).write_text(image.lock.to_text())
        for size in (32, 64):
            with resources.as_file(_logo(image, size)) as logo:
                shutil.copyfile(logo, folder / f"logo-{size}x{size}.png")
        if prefix is not None:
            user = False
        return manager.install_kernel_spec(str(folder), name, user=user, prefix=prefix)


def installed_kernels() -> list[InstalledKernel]:
    """Every kernelspec that uses the distrokernels provisioner."""
    kernels = []
    for name, entry in sorted(KernelSpecManager().get_all_specs().items()):
        spec = entry["spec"]
        provisioner = spec.get("metadata", {}).get("kernel_provisioner", {})
        if provisioner.get("provisioner_name") == PROVISIONER_NAME:
            kernels.append(InstalledKernel(name, entry["resource_dir"], spec))
    return kernels


def find(name: str) -> InstalledKernel:
    for kernel in installed_kernels():
        if kernel.name == name:
            return kernel
    raise KernelspecNotFound(
        f"no distrokernels kernelspec named {name!r}",
        "see `distrokernels list` for the installed ones",
    )


def remove(name: str) -> str:
    """Remove the kernelspec; returns the folder it was in."""
    kernel = find(name)
    try:
        return KernelSpecManager().remove_kernel_spec(kernel.name)
    except NoSuchKernel as error:  # removed concurrently
        raise KernelspecNotFound(f"kernelspec {name!r} vanished while removing it") from error
