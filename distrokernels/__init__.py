"""distrokernels: Jupyter kernels in other Linux userlands, one container per kernel."""

__version__ = "0.1.0"
# The provisioner's entry point in jupyter_client.kernel_provisioners (pyproject.toml).
PROVISIONER_NAME = "distrokernels"
