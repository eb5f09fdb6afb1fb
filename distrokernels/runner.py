"""Run a notebook headless in its distro kernel, and record where it ran.

The provenance written into the notebook's metadata says which userland produced the
outputs: kernelspec, distro, Python, image id, and the host kernel it shared.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from . import kernelspecs
from .errors import InvalidInput, NotebookFailed


def notebook_kernel(notebook: Any) -> str:
    return notebook.metadata.get("kernelspec", {}).get("name", "")


def provenance(kernel: kernelspecs.InstalledKernel) -> dict[str, str]:
    info = kernel.info
    return {
        "kernelspec": kernel.name,
        "distro": info.get("distro", ""),
        "python": info.get("python", ""),
        "ipykernel": info.get("ipykernel", ""),
        "image": info.get("image", ""),
        "image_id": info.get("image_id", ""),
        "host_kernel_release": os.uname().release,
    }


def run_notebook(
    path: Path, kernel_name: str | None = None, output: Path | None = None, timeout: int = 600
) -> Path:
    """Execute every cell; write the executed notebook to ``output`` (default: in place)."""
    if not path.is_file():
        raise InvalidInput(f"no notebook at {path}", "check the path")
    notebook = nbformat.read(path, as_version=4)
    name = kernel_name or notebook_kernel(notebook)
    if not name:
        raise InvalidInput(
            f"{path} names no kernel", "pass --kernel NAME (see `distrokernels list`)"
        )
    kernel = kernelspecs.find(name)
    client = NotebookClient(
        notebook,
        kernel_name=name,
        timeout=timeout,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    target = output or path
    try:
        client.execute()
    except CellExecutionError as error:
        nbformat.write(notebook, target)
        summary = f"{error.ename}: {error.evalue}" if error.ename else str(error).splitlines()[0]
        raise NotebookFailed(
            f"a cell of {path} failed in {name}: {summary}",
            f"the executed notebook, with the traceback, is in {target}",
        ) from error
    notebook.metadata["kernelspec"] = {
        "name": name,
        "display_name": kernel.spec.get("display_name", name),
        "language": "python",
    }
    notebook.metadata["distrokernels"] = provenance(kernel)
    nbformat.write(notebook, target)
    return target
