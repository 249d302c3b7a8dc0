"""Which Slurm job a preempted trainer requeues, and when it leaves that to others."""

from __future__ import annotations

import os
import stat

import pytest

from cltt.engine import preemption


def test_inside_an_array_the_task_is_requeued_not_the_array():
    env = {"SLURM_JOB_ID": "41", "SLURM_ARRAY_JOB_ID": "41", "SLURM_ARRAY_TASK_ID": "0"}
    assert preemption.slurm_job_to_requeue(env) == "41_0"
    assert preemption.slurm_job_to_requeue({"SLURM_JOB_ID": "42"}) == "42"
    assert preemption.slurm_job_to_requeue({}) is None


def fake_scontrol(folder, show_output: str, requeue_code: int = 0):
    """A stand-in scontrol on PATH that logs its arguments (the real one needs a cluster)."""
    script = folder / "scontrol"
    log = folder / "calls.log"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        f'if [ "$1" = show ]; then echo "{show_output}"; exit 0; fi\n'
        f"exit {requeue_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return log


@pytest.fixture
def in_array_task(monkeypatch, tmp_path):
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "41")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def test_usr1_requeues_the_array_task(in_array_task):
    log = fake_scontrol(in_array_task, "JobId=44 ArrayJobId=41 ArrayTaskId=3 Requeue=1 Restarts=0")
    code, message = preemption.requeue_or_exit_code(True, "SIGUSR1")
    assert code == 0 and "41_3" in message
    assert log.read_text().splitlines() == ["show job -o 41_3", "requeue 41_3"]


def test_sigterm_is_never_requeued_by_the_trainer(in_array_task):
    log = fake_scontrol(in_array_task, "Requeue=1")
    code, message = preemption.requeue_or_exit_code(True, "SIGTERM")
    assert code == preemption.REQUEUE_EXIT_CODE and "SIGTERM" in message
    assert not log.exists()


def test_no_requeue_flag_or_refusal_leaves_it_to_the_batch_script(in_array_task):
    fake_scontrol(in_array_task, "Requeue=0")
    code, message = preemption.requeue_or_exit_code(True, "SIGUSR1")
    assert code == preemption.REQUEUE_EXIT_CODE and "--requeue" in message
    assert preemption.requeue_or_exit_code(False, "SIGUSR1")[0] == preemption.REQUEUE_EXIT_CODE


def test_without_scontrol_the_exit_code_asks_for_a_requeue(monkeypatch, tmp_path):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no scontrol, as inside a container
    code, message = preemption.requeue_or_exit_code(True, "SIGUSR1")
    assert code == preemption.REQUEUE_EXIT_CODE and "batch script" in message
