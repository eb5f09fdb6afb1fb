"""The labels distrokernels puts on what it creates, and finds it by again."""

LABEL = "distrokernels"
LABEL_KERNEL_ID = f"{LABEL}.kernel-id"
LABEL_KERNELSPEC = f"{LABEL}.kernelspec"
LABEL_OWNER = f"{LABEL}.owner"
LABEL_RUNTIME_DIR = f"{LABEL}.runtime-dir"
LABEL_POOL = f"{LABEL}.pool"  # started warm, ahead of its kernel (pool.py)
LABEL_PROBE = f"{LABEL}.probe"
LABEL_VOLUME = f"{LABEL}.volume"
