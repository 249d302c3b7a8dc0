"""``moco``: its loss against a hand-worked case, lightly's NTXentLoss with a memory bank and a
double loop; its queue against lightly's MemoryBankModule and by hand; the queue in the
checkpoint through a real SIGUSR1 and resume; two processes with a filled queue equal one; the
one-line refusals. (The registry-enumerated engine tests run it too: tests/test_methods_engine.py.)"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cltt.cli import main
from cltt.data.build import open_frames
from cltt.engine import checkpoint as ckpt
from cltt.engine import preemption, run_files
from cltt.engine.device import resolve_placement
from cltt.engine.step import accumulate_gradients
from cltt.errors import CLTTError, RecipeError
from cltt.methods import build_method, method_class
from cltt.objectives.moco import moco_terms, temporal_positives
from cltt.recipe import load_recipe
from tests.conftest import invoke_in_process
from tests.helpers.commands import one_line_error
from tests.helpers.launchers import launch_torchrun
from tests.helpers.training import Recorder, final_weights, method_recipe, resume_in_process, train_in_process

# --------------------------------------------------------------------------- the loss


def test_a_case_worked_by_hand():
    # τ = 1. Query (1, 0); keys (1, 0) positive, (0, 1) and (-1, 0) negatives; queue (-1, 0):
    # ℓ = log(e^1 + e^0 + e^-1 + e^-1) - 1
    q = torch.tensor([[1.0, 0.0]])
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    queue = torch.tensor([[-2.0, 0.0]])  # normalised inside
    total, count = moco_terms(q, keys, torch.tensor([[True, False, False]]), queue, temperature=1.0)
    assert float(count) == 1
    assert float(total) == pytest.approx(math.log(math.e + 1 + 2 / math.e) - 1, abs=1e-6)
    # two positives, (1, 0) and (0, 1): their logits 1 and 0 are averaged, both stay in the denominator
    total, count = moco_terms(q, keys, torch.tensor([[True, True, False]]), queue, temperature=1.0)
    assert float(total) == pytest.approx(math.log(math.e + 1 + 2 / math.e) - 0.5, abs=1e-6)
    # τ = 0.5 doubles every logit; a query without a positive has no term
    q2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    total, count = moco_terms(q2, keys, torch.tensor([[True, False, False], [False, False, False]]), None, 0.5)
    assert float(count) == 1
    assert float(total) == pytest.approx(math.log(math.e ** 2 + 1 + math.e ** -2) - 2, abs=1e-6)


@pytest.mark.parametrize("n, m, q_size, dim, temperature", [
    (1, 1, 5, 3, 0.2), (4, 4, 0, 8, 0.1), (6, 6, 16, 8, 0.07), (5, 9, 7, 16, 0.5), (8, 8, 64, 32, 1.0)])
def test_one_positive_equals_lightly_ntxent_with_a_memory_bank(n, m, q_size, dim, temperature):
    """lightly's NTXentLoss with a bank scores a query against its key and the bank: each query
    here gets the bank 'the other keys of the batch, then the queue'."""
    from lightly.loss import NTXentLoss

    generator = torch.Generator().manual_seed(n * 100 + q_size)
    queries, keys = torch.randn(n, dim, generator=generator), torch.randn(m, dim, generator=generator)
    queue = torch.randn(q_size, dim, generator=generator)
    positive = torch.eye(n, m, dtype=torch.bool)
    total, count = moco_terms(queries, keys, positive, queue, temperature)
    assert float(count) == n
    expected = 0.0
    for i in range(n):
        others = torch.cat([keys[:i], keys[i + 1:], queue])
        lightly_loss = NTXentLoss(temperature=temperature, memory_bank_size=(max(len(others), 1), dim))
        if len(others):
            lightly_loss.memory_bank.bank = F.normalize(others, dim=1)
            expected += float(lightly_loss(queries[i:i + 1], keys[i:i + 1]))
        # else: a query with no negative has the loss 0 (log e^s / e^s)
    assert float(total) == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_without_a_queue_it_is_moco_v3_cross_entropy():
    """MoCo v3: ``CE(q k^T / τ, arange(N))`` summed over the N queries."""
    torch.manual_seed(0)
    queries, keys = torch.randn(6, 8), torch.randn(6, 8)
    total, _ = moco_terms(queries, keys, torch.eye(6, dtype=torch.bool), None, 0.2)
    logits = F.normalize(queries, dim=1) @ F.normalize(keys, dim=1).T / 0.2
    assert float(total) == pytest.approx(float(F.cross_entropy(logits, torch.arange(6), reduction="sum")), rel=1e-6)


@pytest.mark.parametrize("samples, frames, neighbours, q_size, temperature",
                         [(2, 3, 1, 0, 0.1), (3, 4, 1, 5, 0.2), (2, 5, 2, 9, 0.5), (1, 3, 1, 4, 0.07)])
def test_temporal_positives_against_a_double_loop(samples, frames, neighbours, q_size, temperature):
    rng = np.random.default_rng(samples * frames + q_size)
    queries, keys, queue = (rng.standard_normal((n, 6)) for n in (samples * frames, samples * frames, q_size))
    unit = [x / np.linalg.norm(x, axis=1, keepdims=True) if len(x) else x for x in (queries, keys, queue)]
    expected = 0.0
    for i in range(samples):
        for t in range(frames):
            q = unit[0][i * frames + t]
            scores = [q @ k / temperature for k in unit[1]] + [q @ u / temperature for u in unit[2]]
            log_z = math.log(sum(math.exp(s) for s in scores))
            positives = [i * frames + u for u in range(frames) if abs(u - t) <= neighbours]
            expected += log_z - sum(scores[p] for p in positives) / len(positives)
    mask = temporal_positives(samples, frames, neighbours)
    total, count = moco_terms(*(torch.tensor(x, dtype=torch.float64) for x in (queries, keys)), mask,
                              torch.tensor(queue, dtype=torch.float64), temperature)
    assert float(count) == samples * frames
    assert float(total) == pytest.approx(expected, rel=1e-5)


def test_temporal_neighbours_stop_at_the_window_edges():
    mask = temporal_positives(2, 3, 1)
    window = [[1, 1, 0], [1, 1, 1], [0, 1, 1]]  # frame 0: itself and 1; frame 1: 0..2; frame 2: 1 and itself
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[:3, :3] = expected[3:, 3:] = torch.tensor(window, dtype=torch.bool)
    assert torch.equal(mask, expected)
    assert torch.equal(temporal_positives(2, 3, 0), torch.eye(6, dtype=torch.bool))


# --------------------------------------------------------------------------- the queue


def _method(*overrides):
    recipe = load_recipe(overrides=["model.backbone=tiny_cnn", "data.image_size=32", "model.projection_dim=4",
                                    "method.name=moco", "data.window_size=3", *overrides])
    return build_method(recipe)


def test_the_queue_equals_lightly_memory_bank_when_batches_divide_it():
    from lightly.models.modules.memory_bank import MemoryBankModule

    method = _method("method.moco.queue_size=12")
    bank = MemoryBankModule(size=(12, 4), feature_dim_first=False)
    generator = torch.Generator().manual_seed(0)
    for step in range(7):
        keys = F.normalize(torch.randn(4, 4, generator=generator), dim=1)
        method.enqueue(keys)
        bank(keys, update=True)
        assert int(method.queue_filled) == min(4 * (step + 1), 12)
    torch.testing.assert_close(method.queue, bank.bank, rtol=0, atol=1e-7)  # the queue normalises again: 1 ulp
    assert int(method.queue_pointer) == int(bank.bank_ptr)


def test_any_queue_size_wraps_and_a_step_larger_than_the_queue_keeps_its_newest_keys():
    method = _method("method.moco.queue_size=5")
    key = [F.normalize(torch.tensor([[float(i), 1.0, 0.0, 0.0]]), dim=1) for i in range(20)]

    def holds(queue, numbers):  # equal up to the last bit the queue's own normalisation may change
        torch.testing.assert_close(queue, torch.cat([key[i] for i in numbers]), rtol=0, atol=1e-7)

    method.enqueue(torch.cat(key[0:3]))  # slots 0-2
    assert (int(method.queue_pointer), int(method.queue_filled)) == (3, 3)
    method.enqueue(torch.cat(key[3:6]))  # slots 3, 4, 0
    holds(method.queue, [5, 1, 2, 3, 4])
    assert (int(method.queue_pointer), int(method.queue_filled)) == (1, 5)
    method.enqueue(torch.cat(key[6:13]))  # 7 keys: 8..12 are kept, written from slot 3 on
    holds(method.queue, [10, 11, 12, 8, 9])
    assert int(method.queue_pointer) == 3  # the oldest key, 8, is the next to go


def test_first_steps_contrast_with_the_batch_and_only_the_filled_slots(tmp_path, frames_root):
    """Step 1: the queue is empty, the batch's own keys are the negatives; after it the queue holds
    the 2 B P keys of the step, and step 2's loss counts exactly those slots."""
    recipe = load_recipe(method_recipe(tmp_path, frames_root, "moco"), ["method.moco.queue_size=1000"])
    torch.manual_seed(0)
    method = build_method(recipe)
    method.train()
    dataset = method_class("moco").training_dataset(recipe, open_frames(recipe.data), seed=0)
    views = torch.stack([torch.as_tensor(dataset[(i, 0)]["views"]) for i in range(4)])
    placement = resolve_placement("cpu", "fp32", False)

    assert int(method.queue_filled) == 0
    method.before_step(0, 10)
    accumulate_gradients(method, views, placement, placement.scaler())
    method.after_step(1, 10)
    assert int(method.queue_filled) == 2 * 4 * method.pairs_per_window(recipe) == 24
    assert method.queue[24:].abs().sum() == 0 and method.queue[:24].norm(dim=1).allclose(torch.ones(24))
    queue = method.queue[:24].clone()
    # step 2 scores the 24 filled slots as negatives: more candidates than step 1, a larger loss
    # than the same step with the queue emptied again
    with_queue = accumulate_gradients(method, views, placement, placement.scaler())
    method.queue_filled.zero_()
    without = accumulate_gradients(method, views, placement, placement.scaler())
    assert with_queue > without
    method.queue_filled.fill_(24)
    assert torch.equal(method.queue[:24], queue)


@pytest.mark.slow  # three runs; the fast engine test compares the same buffers within float tolerances
def test_the_queue_resumes_bit_for_bit_after_a_preemption_signal(tmp_path, frames_root, preemption_handlers):
    straight_dir, broken_dir = tmp_path / "straight", tmp_path / "broken"
    straight_dir.mkdir()
    broken_dir.mkdir()
    straight = Recorder()
    train_in_process(method_recipe(straight_dir, frames_root, "moco", epochs=2), reporter=straight)
    first = Recorder(signal_at_steps={len(straight.losses) // 2 + 1})  # inside epoch 2, the queue wrapped
    outcome = train_in_process(method_recipe(broken_dir, frames_root, "moco", epochs=2), reporter=first)
    assert outcome.status == "preempted" and outcome.exit_code == preemption.REQUEUE_EXIT_CODE
    stopped = ckpt.load_checkpoint(ckpt.latest_checkpoint(broken_dir / "runs" / "tiny"))["model"]
    assert int(stopped["queue_filled"]) == 100  # full when the signal came
    assert resume_in_process(broken_dir / "runs" / "tiny", Recorder()).status == "finished"
    resumed, uninterrupted = final_weights(broken_dir / "runs" / "tiny"), final_weights(straight_dir / "runs" / "tiny")
    for key in ("queue", "queue_pointer", "queue_filled"):
        assert torch.equal(resumed[key], uninterrupted[key]), key
    assert not torch.equal(resumed["queue"], stopped["queue"])  # it moved on after the resume
    assert (tmp_path / "straight" / "runs" / "tiny" / run_files.FINAL_CHECKPOINT).exists()


# --------------------------------------------------------------------------- two processes

WORKER = textwrap.dedent("""
    import torch

    from cltt.engine.distributed import GradientSync
    from cltt.engine.step import accumulate_gradients
    from cltt.methods import build_method
    from cltt.recipe import load_recipe
    from tests.helpers.workers import finish_worker, start_worker

    work, info, method, placement = start_worker(lambda work: build_method(load_recipe(work / "tiny.yaml")))
    batches = torch.load(work / "batches.pt")
    sync = GradientSync(method, "ddp")
    result = {}
    for n, views in enumerate(batches, start=1):
        local = views.shape[0] // info.world_size
        method.before_step(n - 1, 10)
        method.zero_grad(set_to_none=True)
        loss = accumulate_gradients(method, views[info.rank * local:(info.rank + 1) * local], placement,
                                    placement.scaler(), None, "exact", {}, sync=sync)
        result[f"loss{n}"] = torch.tensor(loss, dtype=torch.float64)
        result[f"grad{n}"] = torch.cat([p.grad.reshape(-1) for p in method.parameters() if p.grad is not None])
        method.after_step(n, 10)
        result[f"queue{n}"] = method.queue.clone()
    finish_worker(work, info, result, [sync])
""")


@pytest.mark.slow  # a torchrun; the fast engine test checks step 1, whose queue is still empty
def test_two_processes_gather_the_keys_before_enqueueing_them(tmp_path, frames_root):
    """Step 2's loss and gradients read the queue step 1 filled: equal to one process's only if
    both processes enqueued every process's keys, in the global batch's order."""
    recipe_path = method_recipe(tmp_path, frames_root, "moco", model={"head_batchnorm": False})
    recipe = load_recipe(recipe_path)
    dataset = method_class("moco").training_dataset(recipe, open_frames(recipe.data), seed=0)
    batches = [torch.stack([torch.as_tensor(dataset[(i, 0)]["views"]) for i in range(first, first + 4)])
               for first in (0, 4)]
    torch.manual_seed(0)
    method = build_method(recipe)
    method.train()
    torch.save(method.state_dict(), tmp_path / "init.pt")
    torch.save(batches, tmp_path / "batches.pt")
    (tmp_path / "worker.py").write_text(WORKER)
    launch_torchrun(tmp_path, tmp_path / "worker.py")
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    placement = resolve_placement("cpu", "fp32", False)
    for n, views in enumerate(batches, start=1):
        method.before_step(n - 1, 10)
        method.zero_grad(set_to_none=True)
        loss = accumulate_gradients(method, views, placement, placement.scaler())
        grad = torch.cat([p.grad.reshape(-1) for p in method.parameters() if p.grad is not None])
        method.after_step(n, 10)
        for rank, result in enumerate(results):
            assert float(result[f"loss{n}"]) == pytest.approx(loss, rel=1e-5), f"step {n} loss on rank {rank}"
            scale = max(1.0, float(grad.abs().max()))
            torch.testing.assert_close(result[f"grad{n}"], grad, rtol=1e-4, atol=1e-5 * scale)
            torch.testing.assert_close(result[f"queue{n}"], method.queue, rtol=1e-5, atol=1e-6)
    assert int(method.queue_filled) == 48 and method.queue[:48].abs().sum() > 0  # 2 steps x 2 views x 4 x 3 frames


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("overrides, error, fragment", [
    (["method.moco.queue_size=-1"], RecipeError, "'method.moco.queue_size' must be >= 0"),
    (["method.moco.temporal_neighbours=1", "data.window_size=1"], CLTTError,
     "method.moco.temporal_neighbours=1 takes the neighbours of each frame inside a window"),
    (["method.moco.temporal_neighbours=1", "method.positives=time"], CLTTError,
     "method.moco.temporal_neighbours=1 takes the neighbours"),
    (["method.moco.queue_size=0", "data.window_size=1", "train.batch_size=1"], CLTTError,
     "a batch of one has no negatives"),
    (["method.reduction=l_in"], RecipeError, "'method.reduction' is not read by method moco"),
    (["method.positives=time", "data.two_view_offset=1"], CLTTError, "share frames, which method.name=moco would count"),
])
def test_recipes_it_cannot_run_are_one_line(overrides, error, fragment):
    with pytest.raises(error) as info:
        _method(*overrides)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_a_queue_trains_with_a_batch_of_one():
    """The queue is what serves a GPU that holds one window: batch 1 with a queue is no error."""
    method = _method("data.window_size=1", "train.batch_size=1", "method.moco.queue_size=16")
    assert method.negatives(load_recipe(overrides=["method.name=moco", "train.batch_size=1"])) == "batch+queue"


def test_cli_refusal_is_one_line_and_exit_2(tmp_path, frames_root):
    recipe = method_recipe(tmp_path, frames_root, "moco")
    one_line_error(invoke_in_process(main, ["train", recipe, "data.window_size=1"], tmp_path),
                   "method.moco.temporal_neighbours=1 takes the neighbours")
