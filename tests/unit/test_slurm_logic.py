"""The Slurm backend's pure parts: scontrol's lines, job comments, sbatch's options, the
node's command lines and the supervisor, the kernelspec's checks."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from distrokernels import config
from distrokernels.engine import KernelContainerSpec
from distrokernels.errors import InvalidInput
from distrokernels.slurm import jobs, node
from distrokernels.slurm.backend import JobRequest, job_request

SCONTROL = (
    "JobId=42 JobName=dk-slurm-podman UserId=ada(1001) GroupId=ada(1001) Priority=1 "
    "JobState=PENDING Reason=Resources Dependency=(null) ExitCode=0:0 "
    "Command=(null) WorkDir=/home/ada/my notebooks "
    "Comment=distrokernels;owner=vm:17:99;kernelspec=slurm-podman;kernel=abc "
    "StdOut=/home/ada/.local/share/distrokernels/slurm/kernels/abc/job.out "
    "BatchHost=(null) ReqB:S:C:T=0:0:*:* CPUs/Task=1 Features=skylake"
)


def test_scontrol_lines_parse_with_spaces_in_values_and_colons_in_keys():
    fields = jobs.parse_fields(SCONTROL)
    assert fields["WorkDir"] == "/home/ada/my notebooks"
    assert fields["ReqB:S:C:T"] == "0:0:*:*"
    assert fields["CPUs/Task"] == "1"
    job = jobs.parse_job(SCONTROL)
    assert (job.id, job.state, job.node, job.pending, job.ended) == (
        "42",
        "PENDING",
        "",
        True,
        False,
    )
    assert job.why_pending() == "pending: Resources"
    assert job.output.endswith("/kernels/abc/job.out")
    ended = jobs.parse_job(
        SCONTROL.replace("PENDING", "TIMEOUT").replace("(null) Req", "node2 Req")
    )
    assert ended.ended and ended.node == "node2"
    ending = jobs.parse_job(
        SCONTROL.replace("PENDING", "COMPLETING").replace("Resources", "TimeLimit")
    )
    assert ending.end_state == "TIMEOUT"
    assert not jobs.parse_job(SCONTROL.replace("PENDING", "COMPLETING")).ended


def test_a_job_comment_says_whose_it_is_and_nothing_else():
    comment = jobs.JobComment("vm:17:99", "slurm-podman", "abc")
    assert " " not in comment.text()
    assert jobs.JobComment.parse(comment.text()) == comment
    assert jobs.JobComment.parse("someone else's job") is None


def _spec(**changes) -> KernelContainerSpec:
    values = dict(
        image="sha256:" + "ab" * 32,
        command=["/opt/venv/bin/python", "-m", "ipykernel_launcher", "-f", "/run/x.json"],
        user="1001:1001",
        working_dir="/home/ada/my notebooks",
        environment={"LANG": "C.UTF-8", "JPY_SESSION_NAME": "a.ipynb", "HOME": "/home/kernel"},
        binds=["/home/ada/my notebooks:/home/ada/my notebooks:rw", "/data:/data:ro"],
        labels={},
        pids_limit=1024,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        files={"/run/distrokernels/kernel.json": json.dumps({"key": "SECRET"}).encode()},
    )
    values.update(changes)
    return KernelContainerSpec(**values)


def test_sbatch_options_carry_the_request_and_never_the_key_or_environment():
    request = JobRequest(
        partition="gpu", time_limit="4:00:00", account="lab", cpus=4.0, memory_mb=16384,
        gres="gpu:1", constraint="skylake&avx512", runtime="podman", folder="/home/ada/dk",
    )  # fmt: skip
    options = request.sbatch_options(
        jobs.JobComment("o", "k", "id"), "/home/ada/dk/kernels/id", "/w"
    )
    assert "--export=NONE" in options and "--no-requeue" in options
    for expected in ("--partition=gpu", "--time=4:00:00", "--account=lab", "--cpus-per-task=4",
                     "--mem=16384M", "--gres=gpu:1", "--constraint=skylake&avx512"):  # fmt: skip
        assert expected in options
    assert not any("SECRET" in option for option in options)
    assert (
        JobRequest().sbatch_options(jobs.JobComment("o", "k", "i"), "/f", "/w")[-1]
        == "--no-requeue"
    )


def test_the_node_commands_mount_the_folder_at_its_path_and_keep_the_key_in_files():
    spec = _spec()
    podman = node.run_file(spec, "podman", "/home/ada/dk/kernels/id", "/home/ada/dk/images", "dk-1")
    assert "SECRET" not in podman and "C.UTF-8" not in podman  # the environment: in a file
    for expected in ("--network=host", "--userns=keep-id", "--cap-drop=all",
                     "--security-opt=no-new-privileges", "--pids-limit=1024",
                     "'--volume=/home/ada/my notebooks:/home/ada/my notebooks:rw'",
                     "--volume=/home/ada/dk/kernels/id/io:/run/distrokernels:rw",
                     "--volume=/data:/data:ro"):  # fmt: skip
        assert expected in podman
    assert f"/home/ada/dk/images/{'ab' * 32}.tar" in podman
    assert "--userns=keep-id" not in node.run_file(_spec(user="0:0"), "podman", "/f", "/i", "n")
    charliecloud = node.run_file(spec, "charliecloud", "/home/ada/dk/kernels/id", "/i", "dk-1")
    assert "SECRET" not in charliecloud
    assert "'--bind=/home/ada/my notebooks:/home/ada/my notebooks'" in charliecloud
    assert "'--cd=/home/ada/my notebooks'" in charliecloud
    assert f"/i/{'ab' * 32}.ch" in charliecloud
    env = node.environment_file(spec)
    assert "HOME=/tmp\n" in env and "JPY_SESSION_NAME=a.ipynb\n" in env


def test_the_supervisor_runs_each_run_file_in_turn_and_ends_on_stop(tmp_path):
    folder = tmp_path / "kernel folder"
    folder.mkdir()
    script = tmp_path / "job.sh"
    script.write_text(node.job_script(str(folder)))
    job = subprocess.Popen(["sh", str(script)], env={**os.environ, "SLURM_JOB_ID": "7"})
    try:
        for run, status in ((0, 3), (1, 0)):
            (folder / f"run.{run}").write_text(
                f"kernel_start() {{ exit {status}; }}\nkernel_signal() {{ :; }}\n"
            )
            exit_file = folder / f"exit.{run}"
            for _ in range(200):
                if exit_file.exists():
                    break
                subprocess.run(["sleep", "0.05"])
            assert exit_file.read_text().strip() == str(status)
        (folder / "stop").touch()
        assert job.wait(timeout=10) == 0
    finally:
        job.kill()
    assert (folder / "running").read_text().strip() == "7"


def test_the_supervisor_passes_term_to_the_kernel_and_survives_it(tmp_path):
    folder = tmp_path / "k"
    folder.mkdir()
    (folder / "run.0").write_text(
        'kernel_start() { exec sleep 30; }\nkernel_signal() { kill -s "$1" "$pid"; }\n'
    )
    job = subprocess.Popen(["sh", "-c", node.job_script(str(folder))])
    try:
        for _ in range(100):
            if (folder / "running").exists():
                break
            subprocess.run(["sleep", "0.05"])
        subprocess.run(["sleep", "0.3"])
        job.send_signal(15)
        for _ in range(100):
            if (folder / "exit.0").exists():
                break
            subprocess.run(["sleep", "0.05"])
        assert (folder / "exit.0").read_text().strip() == "143"  # the kernel got TERM
        assert job.poll() is None  # the job did not
    finally:
        (folder / "stop").touch()
        job.wait(timeout=10)


def test_the_kernelspec_checks_slurm_values():
    checked = config.validate_config(
        {"backend": "slurm", "partition": "gpu", "time_limit": "1-12:00:00", "cpus": 64.0,
         "memory": "16g", "constraints": ["skylake"], "runtime": "charliecloud"}
    )  # fmt: skip
    request = job_request(checked)
    assert (request.memory_mb, request.constraint, request.cpus) == (16384, "skylake", 64.0)
    assert checked.uses_tcp and checked.sweep_url == jobs.SWEEP_URL
    for bad in ({"partition": "gpu; rm -rf"}, {"time_limit": "soon"}, {"gres": "gpu 1"},
                {"constraints": ["a b"]}, {"queue_timeout": 0.0}):  # fmt: skip
        with pytest.raises(InvalidInput):
            config.validate_config({"backend": "slurm", **bad})
    with pytest.raises(InvalidInput, match="--backend swarm or --backend slurm"):
        config.validate_config({"constraints": ["skylake"]})


def test_a_kernel_folder_is_removed_only_if_it_is_one(tmp_path):
    kernels = tmp_path / "kernels"
    (kernels / "abc").mkdir(parents=True)
    (tmp_path / "precious").mkdir()
    (kernels / "evil").symlink_to(tmp_path / "precious")
    jobs.remove_kernel_folder(str(kernels / "evil"), "evil")
    jobs.remove_kernel_folder(str(tmp_path / "precious"), "precious")
    assert (tmp_path / "precious").is_dir()
    jobs.remove_kernel_folder(str(kernels / "abc"), "abc")
    assert not (kernels / "abc").exists()


class _QueuedEngine:
    """A kernel engine whose job is pending for ``pending`` checks, then runs."""

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.removed = False

    async def state(self):
        from distrokernels.backends import KernelState

        self.pending -= 1
        return KernelState(True, None, waiting="pending: Resources" if self.pending >= 0 else "")

    async def logs_then_remove(self, tail: int) -> str:
        self.removed = True
        return ""


def test_a_queued_start_waits_past_launch_timeout_says_why_once_and_gives_up_at_queue_timeout(
    caplog,
):
    import asyncio
    import logging

    from distrokernels.errors import KernelStartFailed
    from distrokernels.readiness import Start

    log = logging.getLogger("test-queue")
    engine = _QueuedEngine(pending=4)  # about 0.8 s in the queue, then 0.2 s to be ready
    ready_after = [4]

    async def ready() -> bool:
        if engine.pending < 0:
            ready_after[0] -= 1
        return ready_after[0] <= 0

    start = Start(engine, "slurm-gpu", "reinstall", None)
    with caplog.at_level(logging.INFO, logger="test-queue"):
        asyncio.run(start.wait(ready, 0.05, timeout=0.5, queue_timeout=10, log=log))
    assert [r.getMessage() for r in caplog.records] == [
        "distrokernels: slurm-gpu: pending: Resources"
    ]
    assert not engine.removed

    never = _QueuedEngine(pending=10**6)

    async def not_ready() -> bool:
        return False

    with pytest.raises(KernelStartFailed, match=r"waited 1 s in the queue \(pending: Resources\)"):
        asyncio.run(Start(never, "k", "r", None).wait(not_ready, 0.05, 0.5, queue_timeout=1))
    assert never.removed  # a start that gives up cancels its job


def test_the_file_a_kernel_writes_is_read_only_as_a_regular_file_of_its_own(tmp_path):
    from distrokernels.slurm.backend import read_kernels_file

    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    io = tmp_path / "io"
    io.mkdir()
    (io / "kernel.json").symlink_to(secret)  # planted by the notebook
    with pytest.raises(OSError):
        read_kernels_file(str(io / "kernel.json"))
    (io / "kernel.json").unlink()
    os.mkfifo(io / "kernel.json")  # no writer: an open that waited would never return
    with pytest.raises(OSError):
        read_kernels_file(str(io / "kernel.json"))
    (io / "kernel.json").unlink()
    (io / "kernel.json").write_text('{"shell_port": 1}')
    assert read_kernels_file(str(io / "kernel.json")) == '{"shell_port": 1}'
