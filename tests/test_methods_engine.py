"""Every registered method on the shared engine: train, checkpoint round trip, exact resume
after a real preemption signal, and two real processes (torchrun, gloo) equal to one.

The tests enumerate the method registry, so a new method file (or a plugin's entry point)
gets them all with no edit here. Each method runs at its tiniest on the 32 px clips of
``frames_root``: tests/test_train.py's tiny recipe plus the method's own ``example`` sections.
"""

from __future__ import annotations

import textwrap

import pytest
import torch

from cltt.data.build import open_frames
from cltt.engine import checkpoint as ckpt
from cltt.engine import preemption, run_files
from cltt.engine.device import resolve_placement
from cltt.engine.step import accumulate_gradients
from cltt.errors import CLTTError
from cltt.export import export_encoder, load_encoder, open_checkpoint
from cltt.methods import build_method, method_class, registered_methods
from cltt.recipe import load_recipe
from tests.helpers.launchers import launch_torchrun
from tests.helpers.training import (
    Recorder,
    assert_same_weights,
    final_weights,
    method_recipe,
    resume_in_process,
    train_in_process,
)

METHODS = registered_methods()
NAMES = list(METHODS)
# every method, then each of its variants (a mode whose data flow differs, as mae's later target)
CASES = [pytest.param(name, None, id=name) for name in NAMES] + [
    pytest.param(name, variant, id=f"{name}-{variant}") for name in NAMES for variant in METHODS[name].cls.variants]


def test_the_registry_holds_every_method_file_and_describes_each():
    import pkgutil

    import cltt.methods as package

    files = {m.name for m in pkgutil.iter_modules(package.__path__)}
    builtin = {name: entry for name, entry in METHODS.items() if entry.origin == "cltt"}
    assert {entry.cls.__module__.rpartition(".")[2] for entry in builtin.values()} <= files
    assert {"cltt", "simclr", "byol", "vicreg", "barlow_twins", "dino", "clip_simclr", "carl", "slotcontrast"} <= set(builtin)
    assert all(entry.description for entry in METHODS.values())


@pytest.mark.parametrize("name, variant", CASES)
def test_method_trains_and_round_trips(tmp_path, frames_root, name, variant):
    recipe_path = method_recipe(tmp_path, frames_root, name, variant=variant, epochs=1)
    outcome = train_in_process(recipe_path)
    assert outcome.status == "finished"
    state = ckpt.load_checkpoint(tmp_path / "runs" / "tiny" / run_files.FINAL_CHECKPOINT)
    assert state["method"] == name
    fresh = build_method(load_recipe(recipe_path))
    fresh.load_state_dict(state["model"])

    # export: every method with a per-frame encoder exports it; the others say so in one line
    run_dir = tmp_path / "runs" / "tiny"
    try:
        fresh.export_encoder()
    except CLTTError:
        with pytest.raises(CLTTError, match="no per-frame encoder to export"):
            open_checkpoint(run_dir)
        return
    source = open_checkpoint(run_dir)
    result = export_encoder(source, "safetensors", out=tmp_path / "encoder.safetensors")
    frames = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(load_encoder(result.path)(frames), source.frame_encoder(False)(frames))
    if source.no_head_reason:  # heads that read clips or sequences, or score prototypes
        with pytest.raises(CLTTError, match="without --with-head"):
            source.frame_encoder(True)
    else:
        with_head = export_encoder(source, "safetensors", out=tmp_path / "head.safetensors", with_head=True)
        torch.testing.assert_close(load_encoder(with_head.path)(frames), source.frame_encoder(True)(frames))


@pytest.mark.parametrize("name, variant", [c for c in CASES if c.values[0] != "cltt"])  # test_train covers cltt
def test_method_resumes_exactly_after_a_preemption_signal(tmp_path, frames_root, preemption_handlers, name, variant):
    straight_dir, broken_dir = tmp_path / "straight", tmp_path / "broken"
    straight_dir.mkdir()
    broken_dir.mkdir()
    straight = Recorder()
    train_in_process(method_recipe(straight_dir, frames_root, name, variant=variant, epochs=2), reporter=straight)
    assert len(straight.losses) >= 4

    first = Recorder(signal_at_steps={len(straight.losses) // 2 + 1})  # inside epoch 2
    outcome = train_in_process(method_recipe(broken_dir, frames_root, name, variant=variant, epochs=2), reporter=first)
    assert outcome.status == "preempted" and outcome.exit_code == preemption.REQUEUE_EXIT_CODE
    second = Recorder()
    outcome = resume_in_process(broken_dir / "runs" / "tiny", second)
    assert outcome.status == "finished"
    torch.testing.assert_close(torch.tensor(first.losses + second.losses), torch.tensor(straight.losses),
                               rtol=1e-5, atol=1e-6)
    assert_same_weights(final_weights(broken_dir / "runs" / "tiny"), final_weights(straight_dir / "runs" / "tiny"))


# --------------------------------------------------------------------------- two processes

GLOBAL_BATCH = 4
WORKER = textwrap.dedent("""
    import torch

    from cltt.engine.distributed import GradientSync
    from cltt.engine.step import accumulate_gradients
    from cltt.methods import build_method
    from cltt.recipe import load_recipe
    from tests.helpers.workers import finish_worker, start_worker

    # seeded apart per rank: broadcast_module must align the ranks
    work, info, method, placement = start_worker(lambda work: build_method(load_recipe(work / "tiny.yaml")), seed=100)
    batch = torch.load(work / "batch.pt")
    local = batch["views"].shape[0] // info.world_size
    mine = {key: value[info.rank * local:(info.rank + 1) * local] for key, value in batch.items()}
    views = mine.pop("views")
    result = {}
    sync = GradientSync(method, "ddp")  # as the trainer runs it: DistributedDataParallel, no_sync sub-batches
    assert sync.ddp is not None
    for name, sub_batch_size in (("full", None), ("exact_sub1", 1)):
        method.zero_grad(set_to_none=True)
        loss = accumulate_gradients(method, views, placement, placement.scaler(), sub_batch_size, "exact", mine, sync=sync)
        result[name + "/loss"] = torch.tensor(loss, dtype=torch.float64)
        result[name + "/grad"] = torch.cat([p.grad.reshape(-1) for p in method.parameters() if p.grad is not None])
    finish_worker(work, info, result, [sync])
""")


@pytest.mark.parametrize("name, variant", [c for c in CASES if c.values[0] != "cltt"])  # test_distributed covers cltt
def test_method_on_two_processes_equals_one_process(tmp_path, frames_root, name, variant):
    # batch norm statistics are per process by design; without it the two runs must agree exactly
    recipe_path = method_recipe(tmp_path, frames_root, name, variant=variant, model={"head_batchnorm": False})
    recipe = load_recipe(recipe_path)
    dataset = method_class(name).training_dataset(recipe, open_frames(recipe.data), seed=0)
    items = [dataset[(i, 0)] for i in range(GLOBAL_BATCH)]
    keys = ["views", *method_class(name).extra_keys]
    batch = {key: torch.stack([torch.as_tensor(item[key]) for item in items]) for key in keys}
    torch.manual_seed(0)
    method = build_method(recipe)
    method.train()
    torch.save(method.state_dict(), tmp_path / "init.pt")
    torch.save(batch, tmp_path / "batch.pt")
    (tmp_path / "worker.py").write_text(WORKER)
    launch_torchrun(tmp_path, tmp_path / "worker.py")
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    placement = resolve_placement("cpu", "fp32", False)
    extras = {key: batch[key] for key in keys[1:]}
    loss = accumulate_gradients(method, batch["views"], placement, placement.scaler(), None, "exact", extras)
    grad = torch.cat([p.grad.reshape(-1) for p in method.parameters() if p.grad is not None])
    scale = float(grad.abs().max())
    assert scale > 0
    for case in ("full", "exact_sub1"):
        for rank, result in enumerate(results):
            assert float(result[case + "/loss"]) == pytest.approx(loss, rel=1e-5), f"{case} loss on rank {rank}"
            # float32 sums in another order: the tolerance scales with the largest gradient
            torch.testing.assert_close(result[case + "/grad"], grad, rtol=1e-4, atol=1e-5 * max(1.0, scale),
                                       msg=lambda m: f"{case} gradient on rank {rank}: {m}")
