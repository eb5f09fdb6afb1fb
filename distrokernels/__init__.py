"""distrokernels: Jupyter kernels in other Linux userlands, one container per kernel."""

__version__ = "0.1.0"
