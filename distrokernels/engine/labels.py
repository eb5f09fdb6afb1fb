"""The labels distrokernels puts on what it creates, and finds it by again."""

LABEL = "distrokernels"
LABEL_KERNEL_ID = f"{LABEL}.kernel-id"
LABEL_KERNELSPEC = f"{LABEL}.kernelspec"
LABEL_OWNER = f"{LABEL}.owner"
LABEL_RUNTIME_DIR = f"{LABEL}.runtime-dir"
LABEL_POOL = f"{LABEL}.pool"  # started warm, ahead of its kernel (pool.py)
LABEL_PROBE = f"{LABEL}.probe"
LABEL_VOLUME = f"{LABEL}.volume"


def image_label(key: str) -> str:
    """The label of a kernel image that records ``key`` (distro, python, lock, ...)."""
    return f"{LABEL}.{key}"


# What a kernel image's build was asked for and what it is: the build cache's keys.
LABEL_BUILD_KEY = image_label("build-key")
LABEL_REQUEST_KEY = image_label("request-key")
LABEL_LOCK = image_label("lock")
LABEL_LOCK_DIGEST = image_label("lock-digest")
