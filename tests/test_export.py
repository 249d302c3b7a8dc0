"""cltt export: weights in three formats that reproduce the checkpoint's encoder, and embeddings.

One tiny run (tiny_cnn, 32 px, one epoch, CPU) is trained in-process per module; each test
exports from it into its own folder and compares with the encoder rebuilt from the checkpoint
the way training builds it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cltt.cli.export import command as export_command
from cltt.data.decode import read_rgb
from cltt.data.model_input import IMAGENET_MEAN, IMAGENET_STD, to_model_input
from cltt.data.stores import open_store
from cltt.data.transforms import center_resize
from cltt.engine import checkpoint as ckpt
from cltt.engine import run_files
from cltt.engine.run_dir import recipe_from_text
from cltt.errors import CLTTError
from cltt.export import load_encoder
from cltt.methods import build_method
from cltt.models import build_encoder
from cltt.recipe import recipe_to_dict
from tests.conftest import write_clip
from tests.helpers.training import train_in_process, write_recipe


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The run dir of a finished one-epoch tiny run; its frames root is RUN/../../frames."""
    base = tmp_path_factory.mktemp("export")
    root = base / "frames"
    for c, n in enumerate((12, 17, 22)):  # as the frames_root fixture
        write_clip(root, f"clip{c}", n)
    outcome = train_in_process(write_recipe(base, root, train={"epochs": 1}))
    assert outcome.status == "finished"
    return base / "runs" / "tiny"


@pytest.fixture(scope="module")
def reference(run):
    """The checkpoint's encoder, built as training builds it, in eval mode."""
    state = ckpt.load_checkpoint(run / run_files.FINAL_CHECKPOINT)
    method = build_method(recipe_from_text(state["recipe"]))
    method.load_state_dict(state["model"])
    return method.encoder.eval()


def frames(count: int, seed: int = 0) -> torch.Tensor:
    """``[count, 3, 32, 32]`` float input as the exported encoders take it."""
    pixels = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    return to_model_input(pixels, torch.device("cpu"))


def export(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(export_command, [str(a) for a in args], env={"COLUMNS": "300"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def written(folder: Path, suffix: str) -> Path:
    (path,) = folder.glob(f"*{suffix}")
    return path


# --------------------------------------------------------------------------- safetensors


@pytest.mark.parametrize("with_head", [False, True])
def test_safetensors_round_trip(run, reference, tmp_path, with_head):
    out = tmp_path / "not" / "yet" / "there"  # created on the way
    code, stdout, stderr = export(run, "--out", out, *(["--with-head"] if with_head else []))
    assert code == 0, stderr
    path = written(out, ".safetensors")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.name == f"tiny_epoch001{'_head' if with_head else ''}-{digest[:8]}.safetensors"
    assert "load_encoder" in stdout

    encoder = load_encoder(path)
    assert not encoder.training
    x = frames(5)
    with torch.no_grad():
        expected = reference(x) if with_head else reference.represent(x)
        torch.testing.assert_close(encoder(x), expected)
    assert expected.shape == (5, 16 if with_head else 128)


def test_sidecar_describes_the_export(run, tmp_path):
    code, _, stderr = export(run / run_files.FINAL_CHECKPOINT, "--out", tmp_path)
    assert code == 0, stderr
    path = written(tmp_path, ".safetensors")
    sidecar = json.loads(path.with_name(path.name + ".json").read_text())
    state = ckpt.load_checkpoint(run / run_files.FINAL_CHECKPOINT)

    assert sidecar["file"] == path.name and sidecar["kind"] == "safetensors"
    assert sidecar["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(sidecar["weights_sha256"]) == 64
    assert sidecar["architecture"] == {
        "backbone": "tiny_cnn", "timm": {}, "pool": None, "image_size": 32, "feature_dim": 128, "projection_hidden": 128,
        "projection_dim": 16, "head_batchnorm": True, "with_head": False, "output": "representation",
        "output_dim": 128,
    }
    assert sidecar["input"]["shape"] == ["N", 3, 32, 32]
    assert sidecar["input"]["mean"] == list(IMAGENET_MEAN) and sidecar["input"]["std"] == list(IMAGENET_STD)
    assert sidecar["source"]["checkpoint"] == str(run / run_files.FINAL_CHECKPOINT)
    assert sidecar["source"]["epoch"] == state["progress"]["epoch"] == 1
    assert sidecar["source"]["step"] == state["progress"]["step"] > 0
    assert sidecar["recipe"] == recipe_to_dict(recipe_from_text(state["recipe"]))


def test_default_folder_and_reuse_as_backbone_weights(run, reference):
    code, _, stderr = export(run)
    assert code == 0, stderr
    path = written(run / "exports", ".safetensors")
    # the backbone.* keys are what model.weights=PATH reads to start a new run from this one
    encoder = build_encoder("tiny_cnn", 32, weights=str(path))
    assert encoder.load_report.loaded == len(reference.backbone.state_dict())
    for key, value in reference.backbone.state_dict().items():
        torch.testing.assert_close(encoder.backbone.state_dict()[key], value)


# --------------------------------------------------------------------------- torchscript and onnx


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_torchscript_matches(run, reference, tmp_path):
    code, stdout, stderr = export(run, "--format", "torchscript", "--out", tmp_path / "encoder.pt")
    assert code == 0, stderr
    assert "max |torchscript - torch|" in stdout
    scripted = torch.jit.load(str(tmp_path / "encoder.pt"))
    assert isinstance(load_encoder(tmp_path / "encoder.pt"), torch.jit.ScriptModule)
    x = frames(7)  # traced with 2 frames; any batch size works
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), reference.represent(x))
    assert json.loads((tmp_path / "encoder.pt.json").read_text())["kind"] == "torchscript"


def test_onnx_matches_with_onnxruntime(run, reference, tmp_path):
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    code, _, stderr = export(run, "--format", "onnx", "--with-head", "export.onnx_opset=13", "--out", tmp_path)
    assert code == 0, stderr
    path = written(tmp_path, ".onnx")
    graph = onnx.load(str(path))
    assert graph.opset_import[0].version == 13
    assert json.loads({p.key: p.value for p in graph.metadata_props}["cltt"])["architecture"]["with_head"]

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["frames"]
    x = frames(5)
    (got,) = session.run(None, {"frames": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, reference(x).numpy(), atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- embeddings


def test_embeddings_map_back_to_frames(run, reference, tmp_path):
    root = run.parent.parent / "frames"
    code, stdout, stderr = export(run, "--embeddings", root, "--batch-size", "16", "--out", tmp_path / "emb")
    assert code == 0, stderr
    assert "embedded 51 frames" in stdout
    features = np.load(written(tmp_path / "emb", ".npy"))
    assert features.dtype == np.float32 and features.shape == (51, 128)

    with open(written(tmp_path / "emb", ".csv"), newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["clip", "frame", "row"]
    manifest = open_store(root)
    expected_rows = [[clip, name] for c, clip in enumerate(manifest.clips) for name in manifest.frame_names(c)]
    assert [r[:2] for r in rows[1:]] == expected_rows
    assert [int(r[2]) for r in rows[1:]] == list(range(51))
    assert rows[1][:2] == ["clip0", "frame_1.jpg"] and rows[-1][:2] == ["clip2", "frame_22.jpg"]

    picked = [0, 11, 12, 30, 50]  # clip boundaries and batch boundaries (16, 32, 48)
    pixels = np.stack([center_resize(read_rgb(str(root / rows[1 + r][0] / rows[1 + r][1])), 32) for r in picked])
    with torch.no_grad():
        expected = reference.represent(to_model_input(torch.from_numpy(pixels).permute(0, 3, 1, 2), torch.device("cpu")))
    np.testing.assert_allclose(features[picked], expected.numpy(), atol=1e-5, rtol=1e-5)


def test_embeddings_with_head_to_a_named_file(run, tmp_path):
    root = run.parent.parent / "frames"
    target = tmp_path / "deep" / "proj.npy"
    code, _, stderr = export(run, "--embeddings", root, "--with-head", "--out", target)
    assert code == 0, stderr
    assert np.load(target).shape == (51, 16)
    assert (tmp_path / "deep" / "proj.csv").is_file()
    assert json.loads((tmp_path / "deep" / "proj.npy.json").read_text())["num_frames"] == 51


# --------------------------------------------------------------------------- bad input


def assert_one_line(code: int, stderr: str, *fragments: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pth")
    assert_one_line(*export(tmp_path / "garbage.pth")[::2], "not a readable checkpoint")
    assert_one_line(*export(tmp_path / "other.pth")[::2], "not a cltt checkpoint")
    assert_one_line(*export(tmp_path / "missing.pth")[::2], "does not exist")
    (tmp_path / "empty_run").mkdir()
    assert_one_line(*export(tmp_path / "empty_run")[::2], "has no checkpoint yet")


def test_bad_arguments(run, tmp_path):
    assert_one_line(*export(run, "model.backbone=resnet18")[::2], "model.backbone cannot change")
    assert_one_line(*export(run, "export.formt=onnx")[::2], "did you mean 'export.format'")
    assert_one_line(*export(run, "--out", tmp_path / "weights.onnx")[::2], "ends in .onnx")
    (tmp_path / "a_file").write_text("")
    assert_one_line(*export(run, "--out", tmp_path / "a_file" / "sub")[::2], "cannot create output folder")
    assert_one_line(*export()[::2], "takes one CHECKPOINT or RUN_DIR")
    assert_one_line(*export(run, "--embeddings", tmp_path / "no_frames")[::2], "does not exist")


def test_load_encoder_refuses_foreign_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CLTTError, match="not written by cltt export"):
        load_encoder(tmp_path / "plain.safetensors")
    with pytest.raises(CLTTError, match="onnxruntime"):
        (tmp_path / "x.onnx").write_bytes(b"")
        load_encoder(tmp_path / "x.onnx")


def test_exports_are_never_overwritten_without_force_and_follow_the_umask(run, tmp_path):
    """Another run's weights or embeddings under the same name are kept unless --force; files get
    0666 less the umask like any other (safetensors' private temp files used to leave 0600)."""
    target = tmp_path / "shared" / "encoder.safetensors"
    code, _, stderr = export(run, "--out", target)
    assert code == 0, stderr
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    target.write_bytes(b"another run's weights")
    assert_one_line(*export(run, "--out", target)[::2], "encoder.safetensors, ", "encoder.safetensors.json exist; pass --force")
    assert target.read_bytes() == b"another run's weights"
    code, _, stderr = export(run, "--out", target, "--force")
    assert code == 0, stderr
    assert target.read_bytes() != b"another run's weights"
    folder = tmp_path / "hashed"
    first = export(run, "--out", folder)
    again = export(run, "--out", folder)  # the same weights under their hashed name: nothing to refuse
    assert first[0] == again[0] == 0 and len(list(folder.glob("*.safetensors"))) == 1

    root = run.parent.parent / "frames"
    features = tmp_path / "emb.npy"
    assert export(run, "--embeddings", root, "--out", features)[0] == 0
    assert stat.S_IMODE(features.stat().st_mode) == 0o666 & ~mask
    before = features.read_bytes()
    assert_one_line(*export(run, "--embeddings", root, "--out", features)[::2],
                    "emb.npy, ", "emb.csv, ", "emb.npy.json exist; pass --force")
    assert features.read_bytes() == before
    assert export(run, "--embeddings", root, "--out", features, "--force")[0] == 0
