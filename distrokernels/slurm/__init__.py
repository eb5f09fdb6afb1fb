"""Kernels as Slurm jobs, in an unprivileged container runtime on the compute node.

- jobs.py: the Slurm commands (sbatch, scontrol, squeue, scancel), parsed as data;
- node.py: what runs on the node: the job's supervisor script, the runtime's command
  line (rootless Podman or Charliecloud) and the images staged in a shared folder;
- backend.py: SlurmBackend, one kernel's job, restarts staying in its allocation.

Only the user's private folder on the shared file system carries the kernel's key and
connection file: never the job's script, environment or comment, which other users of
the cluster can read with `scontrol show job`.
"""
