"""Two real processes on CPU (gloo) against one process: same loss, same gradients.

A helper script is written to ``tmp_path`` and launched twice: under torchrun (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``) and as ``srun`` would start it (``SLURM_PROCID``, ``SLURM_NTASKS``,
rendezvous derived from ``SLURM_JOB_NODELIST`` and ``SLURM_JOB_ID``). Each rank reads its own
environment with :func:`process_info`, joins with :func:`init_processes`, receives rank 0's
weights through :func:`broadcast_module`, takes its half of a fixed global batch of 8 windows
and calls :func:`accumulate_gradients`. The parent compares with the one-process step on all 8
windows: gathered negatives, global unit counts and the gradient reduction must together give
dL/dθ of the whole batch, also with GradCache sub-batches inside each process.
"""

from __future__ import annotations

import copy
import os
import random
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cltt.engine.device import resolve_placement
from cltt.engine.distributed import ProcessInfo, first_host, process_info
from cltt.engine.step import accumulate_gradients
from cltt.methods import build_method
from cltt.recipe import recipe_from_dict

RECIPE = {
    "model": {"backbone": "tiny_cnn", "head_batchnorm": False},
    "data": {"image_size": 32, "window_size": 3},
    "method": {"name": "cltt"},
}
WORLD_SIZE = 2
GLOBAL_BATCH = 8
RTOL, ATOL = 1e-4, 1e-6
REPO_ROOT = Path(__file__).resolve().parents[1]

# (sub_batch_size, accumulation) of each step every rank takes, in order.
CASES = {"full": (None, "exact"), "exact_sub2": (2, "exact"), "approximate_sub2": (2, "approximate")}

WORKER = textwrap.dedent(f"""
    import sys
    from pathlib import Path

    import torch

    torch.set_num_threads(1)

    from cltt.engine.device import resolve_placement
    from cltt.engine.distributed import broadcast_module, init_processes, process_info, shutdown_processes
    from cltt.engine.step import accumulate_gradients
    from cltt.methods import build_method
    from cltt.recipe import recipe_from_dict

    work = Path(sys.argv[1])
    info = process_info()
    init_processes(info, torch.device("cpu"))
    rank = info.rank
    recipe = recipe_from_dict({RECIPE!r})
    torch.manual_seed(100 + rank)  # different on purpose: broadcast_module must align them
    method = build_method(recipe)
    method.train()
    if rank == 0:
        method.load_state_dict(torch.load(work / "init.pt"))
    broadcast_module(method)
    placement = resolve_placement("cpu", "fp32", False)
    local = {GLOBAL_BATCH // WORLD_SIZE}
    views = torch.load(work / "views.pt")[rank * local:(rank + 1) * local]
    result = {{
        "info": torch.tensor([info.rank, info.world_size, info.local_rank]),
        "initial": torch.cat([p.detach().reshape(-1) for p in method.parameters()]),
    }}
    for name, (sub_batch_size, accumulation) in {CASES!r}.items():
        method.zero_grad(set_to_none=True)
        loss = accumulate_gradients(method, views, placement, placement.scaler(), sub_batch_size, accumulation)
        result[name + "/loss"] = torch.tensor(loss, dtype=torch.float64)
        result[name + "/grad"] = torch.cat([p.grad.reshape(-1) for p in method.parameters()])
    torch.save(result, work / f"rank{{rank}}.pt")
    shutdown_processes()
""")


def free_port(low: int = 20000, high: int = 40000) -> int:
    """A TCP port in [low, high) that nothing listens on right now."""
    for _ in range(200):
        port = random.randrange(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in [{low}, {high})")


def base_env() -> dict[str, str]:
    """This environment without any launcher's variables, one thread per process."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "TORCHELASTIC_"))
           and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # containers whose hostname does not resolve
    return env


def check(processes: list[subprocess.Popen], timeout: float = 120) -> None:
    failures = []
    for proc in processes:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            out, _ = proc.communicate()
            failures.append(f"timed out:\n{out}")
            continue
        if proc.returncode != 0:
            failures.append(f"exit {proc.returncode}:\n{out}")
    assert not failures, "\n".join(failures)


def launch_torchrun(work: Path, script: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={WORLD_SIZE}", "--nnodes=1",
           "--master-addr=127.0.0.1", f"--master-port={free_port()}", str(script), str(work)]
    check([subprocess.Popen(cmd, env=base_env(), cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)])


def launch_like_srun(work: Path, script: Path) -> None:
    port = free_port()
    processes = []
    for rank in range(WORLD_SIZE):
        env = base_env() | {
            "SLURM_PROCID": str(rank), "SLURM_NTASKS": str(WORLD_SIZE), "SLURM_STEP_NUM_TASKS": str(WORLD_SIZE),
            "SLURM_LOCALID": str(rank),
            "SLURM_JOB_NODELIST": "127.0.0.1", "SLURM_JOB_ID": str(20000 * 7 + port - 20000),
        }
        processes.append(subprocess.Popen([sys.executable, str(script), str(work)], env=env, cwd=work,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    check(processes)


def one_process_step(method, views, sub_batch_size=None, accumulation="exact") -> tuple[float, torch.Tensor]:
    method = copy.deepcopy(method)
    placement = resolve_placement("cpu", "fp32", False)
    loss = accumulate_gradients(method, views, placement, placement.scaler(), sub_batch_size, accumulation)
    return loss, torch.cat([p.grad.reshape(-1) for p in method.parameters()])


@pytest.fixture(scope="module")
def reference():
    """The method (seed 0), the global batch and the one-process steps they give."""
    torch.manual_seed(0)
    method = build_method(recipe_from_dict(RECIPE))
    method.train()
    views = torch.randint(0, 256, (GLOBAL_BATCH, 1, 3, 3, 32, 32), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(5))
    full = one_process_step(method, views)
    # Approximate mode under 2 processes: sub-batch j is rows [2j, 2j+2) of every rank, so its
    # negatives are the matching rows of both halves: global windows {0, 1, 4, 5} then {2, 3, 6, 7}.
    parts = [one_process_step(method, views[rows]) for rows in ([0, 1, 4, 5], [2, 3, 6, 7])]
    approximate = (sum(loss for loss, _ in parts) / 2, sum(grad for _, grad in parts) / 2)
    expected = {"full": full, "exact_sub2": full, "approximate_sub2": approximate}
    return method, views, expected


def run_two_ranks(tmp_path: Path, reference, launch) -> list[dict[str, torch.Tensor]]:
    method, views, _ = reference
    torch.save(method.state_dict(), tmp_path / "init.pt")
    torch.save(views, tmp_path / "views.pt")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    launch(tmp_path, script)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]


def assert_matches_one_process(results, reference) -> None:
    method, _, expected = reference
    initial = torch.cat([p.detach().reshape(-1) for p in method.parameters()])
    for rank, result in enumerate(results):
        assert result["info"].tolist() == [rank, WORLD_SIZE, rank]
        assert torch.equal(result["initial"], initial), f"rank {rank} did not start from rank 0's weights"
    for name, (loss, grad) in expected.items():
        for rank, result in enumerate(results):
            assert float(result[name + "/loss"]) == pytest.approx(loss, rel=1e-6), f"{name} loss on rank {rank}"
            torch.testing.assert_close(result[name + "/grad"], grad, rtol=RTOL, atol=ATOL,
                                       msg=lambda m: f"{name} gradient on rank {rank}: {m}")
        # one all-reduce: the ranks hold bit-identical gradients, so their weights cannot drift apart
        assert torch.equal(results[0][name + "/grad"], results[1][name + "/grad"]), name


def test_two_processes_under_torchrun_equal_one_process(tmp_path, reference):
    assert_matches_one_process(run_two_ranks(tmp_path, reference, launch_torchrun), reference)


def test_two_processes_under_srun_environment_equal_one_process(tmp_path, reference):
    assert_matches_one_process(run_two_ranks(tmp_path, reference, launch_like_srun), reference)


def test_approximate_reference_differs_from_the_full_batch(reference):
    """Guards the test above: the three expectations are not the same numbers."""
    _, _, expected = reference
    assert expected["approximate_sub2"][0] < expected["full"][0]


# --------------------------------------------------------------------------- environments


def test_process_info_from_torchrun_environment():
    env = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "node0"}
    assert process_info(env) == ProcessInfo(rank=3, world_size=8, local_rank=1)


def test_process_info_from_slurm_environment():
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "8", "SLURM_LOCALID": "1",
           "SLURM_JOB_ID": "1234"}
    info = process_info(env)
    assert info == ProcessInfo(rank=5, world_size=8, local_rank=1)
    assert info.distributed and not info.is_main


def test_torchrun_inside_a_slurm_allocation_wins():
    env = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
           "SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_LOCALID": "0"}
    assert process_info(env) == ProcessInfo(1, 4, 1)


@pytest.mark.parametrize("env", [{}, {"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_LOCALID": "0"},
                                 {"SLURM_JOB_ID": "7"},
                                 # the batch script of an --ntasks=4 job is one process, not a run of 4
                                 {"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_ID": "7"}])
def test_single_process_environments(env):
    info = process_info(env)
    assert info == ProcessInfo(0, 1, 0)
    assert info.is_main and not info.distributed


@pytest.mark.parametrize("nodelist, host", [
    ("gpu[003-005,007],cpu1", "gpu003"),
    ("gpu[007,003-005]", "gpu007"),
    ("node17", "node17"),
    ("cpu1,cpu2", "cpu1"),
    ("a-b[10-12]", "a-b10"),
])
def test_first_host_of_a_slurm_node_list(nodelist, host):
    assert first_host(nodelist) == host
