"""Two real processes on CPU (gloo) against one process: same loss, same gradients.

A helper script is written to ``tmp_path`` and launched twice: under torchrun (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``) and as ``srun`` would start it (``SLURM_PROCID``, ``SLURM_NTASKS``,
rendezvous derived from ``SLURM_JOB_NODELIST`` and ``SLURM_JOB_ID``). Each rank reads its own
environment with :func:`process_info`, joins with :func:`init_processes`, receives rank 0's
weights through :func:`broadcast_module`, takes its half of a fixed global batch of 8 windows
and calls :func:`accumulate_gradients`, once with DistributedDataParallel (the trainer's
:class:`GradientSync`, sub-batches under ``no_sync``) and once with the flat all-reduce. The
parent compares with the one-process step on all 8 windows: gathered negatives, global unit
counts and the gradient reduction must together give dL/dθ of the whole batch, also with
GradCache sub-batches inside each process. With ``model.sync_batchnorm`` the default model
(resnet18, BatchNorm head) on two processes equals one process on the global batch.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cltt.engine import run_files
from cltt.engine.device import resolve_placement
from cltt.engine.distributed import ProcessInfo, first_host, process_info
from cltt.engine.step import accumulate_gradients
from cltt.methods import build_method
from cltt.recipe import recipe_from_dict
from tests.helpers.launchers import WORLD_SIZE, base_env, check, free_port, launch_like_srun, launch_torchrun

RECIPE = {
    "model": {"backbone": "tiny_cnn", "head_batchnorm": False},
    "data": {"image_size": 32, "window_size": 3},
    "method": {"name": "cltt"},
}
GLOBAL_BATCH = 8
RTOL, ATOL = 1e-4, 1e-6

# (sub_batch_size, accumulation) of each step every rank takes, in order.
CASES = {"full": (None, "exact"), "exact_sub2": (2, "exact"), "approximate_sub2": (2, "approximate")}

WORKER = textwrap.dedent(f"""
    import weakref

    import torch

    from cltt.engine.distributed import GradientSync
    from cltt.engine.step import accumulate_gradients
    from cltt.methods import build_method
    from cltt.models.global_batchnorm import convert_to_global_batchnorm, count_global_batchnorm
    from cltt.recipe import recipe_from_dict
    from tests.helpers.workers import finish_worker, start_worker


    def make_method(work):
        config = torch.load(work / "config.pt")
        recipe = recipe_from_dict(config["recipe"])
        method = build_method(recipe).to(config.get("dtype", torch.float32))
        if recipe.model.sync_batchnorm:
            convert_to_global_batchnorm(method)
            assert count_global_batchnorm(method) > 0
        return method


    # seeded apart per rank on purpose: broadcast_module must align them
    work, info, method, placement = start_worker(make_method, seed=100)
    config = torch.load(work / "config.pt")
    rank = info.rank
    local = {GLOBAL_BATCH // WORLD_SIZE}
    views = torch.load(work / "views.pt")[rank * local:(rank + 1) * local]
    result = {{
        "info": torch.tensor([info.rank, info.world_size, info.local_rank]),
        "initial": torch.cat([p.detach().reshape(-1) for p in method.parameters()]),
    }}
    syncs = {{"ddp": GradientSync(method, "ddp"), "flat": GradientSync(method, "flat")}}
    assert syncs["ddp"].ddp is not None
    for mode, sync in syncs.items():
        for name, (sub_batch_size, accumulation) in config["cases"].items():
            method.zero_grad(set_to_none=True)
            saved = {{k: v.clone() for k, v in method.state_dict().items()}}
            loss = accumulate_gradients(method, views, placement, placement.scaler(), sub_batch_size, accumulation,
                                        sync=sync)
            result[f"{{mode}}/{{name}}/loss"] = torch.tensor(loss, dtype=torch.float64)
            result[f"{{mode}}/{{name}}/grad"] = torch.cat([p.grad.reshape(-1) for p in method.parameters()])
            result[f"{{mode}}/{{name}}/buffers"] = torch.cat([b.float().reshape(-1) for b in method.buffers()] or [torch.zeros(0)])
            method.load_state_dict(saved)  # running statistics back, for the next case
    wrapper = weakref.ref(syncs["ddp"].ddp)


    def closed_syncs_are_freed_and_refuse():
        assert wrapper() is None, "close() must free the DDP wrapper before the process group goes"
        try:
            syncs["ddp"].forward(views, {{}})
        except RuntimeError:
            pass
        else:
            raise AssertionError("a closed GradientSync must refuse to forward")


    finish_worker(work, info, result, syncs.values(), after_close=closed_syncs_are_freed_and_refuse)
""")


def one_process_step(method, views, sub_batch_size=None, accumulation="exact") -> tuple[float, torch.Tensor]:
    method = copy.deepcopy(method)
    placement = resolve_placement("cpu", "fp32", False)
    loss = accumulate_gradients(method, views, placement, placement.scaler(), sub_batch_size, accumulation)
    return loss, torch.cat([p.grad.reshape(-1) for p in method.parameters()]), \
        torch.cat([b.float().reshape(-1) for b in method.buffers()] or [torch.zeros(0)])


@pytest.fixture(scope="module")
def reference():
    """The method (seed 0), the global batch and the one-process steps they give."""
    torch.manual_seed(0)
    method = build_method(recipe_from_dict(RECIPE))
    method.train()
    views = torch.randint(0, 256, (GLOBAL_BATCH, 1, 3, 3, 32, 32), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(5))
    full = one_process_step(method, views)[:2]
    # Approximate mode under 2 processes: sub-batch j is rows [2j, 2j+2) of every rank, so its
    # negatives are the matching rows of both halves: global windows {0, 1, 4, 5} then {2, 3, 6, 7}.
    parts = [one_process_step(method, views[rows]) for rows in ([0, 1, 4, 5], [2, 3, 6, 7])]
    approximate = (sum(part[0] for part in parts) / 2, sum(part[1] for part in parts) / 2)
    expected = {"full": full, "exact_sub2": full, "approximate_sub2": approximate}
    return method, views, expected, {"recipe": RECIPE, "cases": CASES}


def run_two_ranks(tmp_path: Path, reference, launch) -> list[dict[str, torch.Tensor]]:
    method, views, _, config = reference
    torch.save(config, tmp_path / "config.pt")
    torch.save(method.state_dict(), tmp_path / "init.pt")
    torch.save(views, tmp_path / "views.pt")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    launch(tmp_path, script)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]


def assert_matches_one_process(results, reference, rtol=RTOL, atol=ATOL) -> None:
    method, _, expected, _ = reference
    initial = torch.cat([p.detach().reshape(-1) for p in method.parameters()])
    for rank, result in enumerate(results):
        assert result["info"].tolist() == [rank, WORLD_SIZE, rank]
        assert torch.equal(result["initial"], initial), f"rank {rank} did not start from rank 0's weights"
    for mode in ("ddp", "flat"):
        for name, (loss, grad, *buffers) in expected.items():
            key = f"{mode}/{name}"
            for rank, result in enumerate(results):
                assert float(result[key + "/loss"]) == pytest.approx(loss, rel=1e-6), f"{key} loss on rank {rank}"
                torch.testing.assert_close(result[key + "/grad"], grad, rtol=rtol, atol=atol,
                                           msg=lambda m: f"{key} gradient on rank {rank}: {m}")
                if buffers:
                    torch.testing.assert_close(result[key + "/buffers"], buffers[0], rtol=1e-4, atol=1e-5,
                                               msg=lambda m: f"{key} running statistics on rank {rank}: {m}")
            # summed, not averaged: the ranks hold bit-identical gradients, so their weights cannot drift apart
            assert torch.equal(results[0][key + "/grad"], results[1][key + "/grad"]), key


def test_two_processes_under_torchrun_equal_one_process(tmp_path, reference):
    assert_matches_one_process(run_two_ranks(tmp_path, reference, launch_torchrun), reference)


def test_two_processes_under_srun_environment_equal_one_process(tmp_path, reference):
    assert_matches_one_process(run_two_ranks(tmp_path, reference, launch_like_srun), reference)


def test_approximate_reference_differs_from_the_full_batch(reference):
    """Guards the test above: the three expectations are not the same numbers."""
    _, _, expected, _ = reference
    assert expected["approximate_sub2"][0] < expected["full"][0]


def test_global_batchnorm_on_two_processes_equals_one_process_on_the_global_batch(tmp_path):
    """The default model (resnet18 with the BatchNorm head) with model.sync_batchnorm: loss,
    gradients and running statistics of 2 processes are those of 1 process on all 8 windows.

    The encoder runs in float64: in float32 the statistics' rounding differs between one and
    two processes by ~1e-7, which is enough to flip a near-tie in ResNet's max-pool for an
    odd pixel and route its gradient elsewhere (a 0.1-1% difference that is not an error)."""
    recipe = {"model": {"backbone": "resnet18", "sync_batchnorm": True}, "data": {"image_size": 32, "window_size": 3},
              "method": {"name": "cltt"}}
    torch.manual_seed(0)
    method = build_method(recipe_from_dict(recipe)).double()
    method.train()
    views = torch.randint(0, 256, (GLOBAL_BATCH, 1, 3, 3, 32, 32), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(5)).double() / 255
    full = one_process_step(method, views)
    halves = [one_process_step(method, views[rows]) for rows in (slice(0, 4), slice(4, 8))]
    reference = (method, views, {"full": full}, {"recipe": recipe, "cases": {"full": (None, "exact")}, "dtype": torch.float64})
    assert_matches_one_process(run_two_ranks(tmp_path, reference, launch_torchrun), reference)
    # guard: per-process statistics (plain BatchNorm) would have given another loss
    assert abs(halves[0][0] + halves[1][0] - 2 * full[0]) > 1e-3


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


def test_cltt_train_under_torchrun_with_global_batchnorm(tmp_path, frames_root):
    """The trainer's own path: two processes, DDP, model.sync_batchnorm on the default model;
    the checkpoint is a plain BatchNorm state dict that one process resumes."""
    recipe = Path(__file__).parent.parent / "recipes" / "quickstart.yaml"
    args = [f"data.root={frames_root}", "data.image_size=32", "train.epochs=1", "train.batch_size=4",
            "model.backbone=resnet18", "model.sync_batchnorm=true", "data.num_workers=0", "train.name=ddp"]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={WORLD_SIZE}", "--nnodes=1",
           "--master-addr=127.0.0.1", f"--master-port={free_port()}", "-m", "cltt", "train", str(recipe), *args]
    check([subprocess.Popen(cmd, env=base_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)],
          timeout=300)
    state = torch.load(tmp_path / "runs" / "ddp" / run_files.FINAL_CHECKPOINT, map_location="cpu", weights_only=False)
    torch.manual_seed(0)
    plain = build_method(recipe_from_dict({"model": {"backbone": "resnet18"}, "data": {"image_size": 32, "window_size": 4}}))
    plain.load_state_dict(state["model"])  # same keys and shapes as plain BatchNorm
    assert int(state["model"]["encoder.backbone.bn1.num_batches_tracked"]) > 0
