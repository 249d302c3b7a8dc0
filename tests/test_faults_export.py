"""Issue 24, cases 3 and 18: ``cltt export`` never replaces a file without ``--force`` (side files
included, checked before any work), and an export can be reproduced outside cltt.

Runs are trained and exported by the real ``cltt`` command in subprocesses; the outside
reproduction runs in a Python process where importing cltt fails. Frames are real 200x150
JPEGs of blurred noise: with a 48 px model cltt decodes them at half size (150 // 2 >= 48),
which "resize the short side, crop the centre" alone does not reproduce.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from cltt.data.decode import read_rgb, reduction_for
from cltt.data.model_input import to_model_input
from cltt.data.transforms import center_resize
from cltt.export import load_encoder
from cltt.export.preprocess import preprocess_source

IMAGE_SIZE = 48
FRAME_SHAPE = (150, 200)  # height, width: the short side 150 is decoded at 1/2 for 48 px
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "COLUMNS": "300"}


def cltt(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real ``cltt`` command line in its own process."""
    return subprocess.run([sys.executable, "-m", "cltt", *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=600)


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2 with one ``error:`` line holding every fragment; returns the line."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def write_noise_clips(root: Path, clips: int = 2, frames: int = 5) -> Path:
    """``clips`` clip folders of ``frames`` textured JPEGs of FRAME_SHAPE (fine detail, so the
    decode scale and the interpolation change the pixels the model sees)."""
    rng = np.random.default_rng(24)
    for clip in range(clips):
        folder = root / f"clip{clip}"
        folder.mkdir(parents=True)
        for frame in range(1, frames + 1):
            noise = rng.integers(0, 256, (*FRAME_SHAPE, 3), dtype=np.uint8)
            image = cv2.GaussianBlur(noise, (5, 5), 1.0)
            cv2.imwrite(str(folder / f"frame_{frame}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return root


def train_run(base: Path, backbone: str) -> Path:
    """Run dir of a one-epoch run of ``backbone`` at IMAGE_SIZE on the noise frames, trained by ``cltt train``."""
    frames = base / "frames"
    if not frames.exists():
        write_noise_clips(frames)
    tree = {
        "data": {"root": str(frames), "window_size": 3, "window_stride": 1, "image_size": IMAGE_SIZE, "num_workers": 0},
        "model": {"backbone": backbone, "projection_dim": 16},
        "train": {"epochs": 1, "batch_size": 4, "lr": 1e-3, "warmup_epochs": 0, "out_dir": str(base / "runs"),
                  "device": "cpu", "name": backbone},
    }
    recipe = base / f"{backbone}.yaml"
    recipe.write_text(yaml.safe_dump(tree))
    result = cltt("train", recipe)
    assert result.returncode == 0, result.stderr
    return base / "runs" / backbone


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    return train_run(tmp_path_factory.mktemp("faults_export"), "tiny_cnn")


# --------------------------------------------------------------------------- case 3


def test_case_03_sidecar_never_replaces_a_users_file(tiny_run, tmp_path):
    """A user's ``X.json`` is not the sidecar of ``X.safetensors`` (that is ``X.safetensors.json``),
    and a user's file under the sidecar's name stops the export before any work."""
    users = tmp_path / "encoder.json"
    users.write_text("my notes\n")
    result = cltt("export", tiny_run, "--out", tmp_path / "encoder.safetensors")
    assert result.returncode == 0, result.stderr
    assert users.read_text() == "my notes\n"
    sidecar = json.loads((tmp_path / "encoder.safetensors.json").read_text())
    assert sidecar["file"] == "encoder.safetensors" and sidecar["kind"] == "safetensors"

    taken = tmp_path / "other.safetensors.json"
    taken.write_text("my notes\n")
    assert_refused(cltt("export", tiny_run, "--out", tmp_path / "other.safetensors"), str(taken), "--force")
    assert taken.read_text() == "my notes\n" and not (tmp_path / "other.safetensors").exists()
    result = cltt("export", tiny_run, "--out", tmp_path / "other.safetensors", "--force")
    assert result.returncode == 0, result.stderr
    assert json.loads(taken.read_text())["file"] == "other.safetensors"


def test_case_03_two_formats_of_one_export_keep_their_own_sidecars(tiny_run, tmp_path):
    """``encoder.onnx`` written after ``encoder.safetensors`` leaves the latter's sidecar describing it."""
    pytest.importorskip("onnx")
    formats = (("safetensors", ".safetensors"), ("onnx", ".onnx"), ("torchscript", ".pt"))
    for fmt, suffix in formats:
        result = cltt("export", tiny_run, "--format", fmt, "--out", tmp_path / f"encoder{suffix}")
        assert result.returncode == 0, result.stderr
    for fmt, suffix in formats:
        sidecar = json.loads((tmp_path / f"encoder{suffix}.json").read_text())
        assert sidecar["kind"] == fmt and sidecar["file"] == f"encoder{suffix}"
        assert sidecar["sha256"] == hashlib.sha256((tmp_path / f"encoder{suffix}").read_bytes()).hexdigest()
    assert not (tmp_path / "encoder.json").exists()


def test_case_03_embeddings_check_every_file_before_work(tiny_run, tmp_path):
    """``--embeddings --out my.npy`` writes my.npy, my.csv and my.npy.json; any of them existing
    stops it before a frame is read, in one line naming each."""
    root = tiny_run.parent.parent / "frames"
    (tmp_path / "my.csv").write_text("a user's table\n")
    (tmp_path / "my.npy.json").write_text("{}\n")
    line = assert_refused(cltt("export", tiny_run, "--embeddings", root, "--out", tmp_path / "my.npy"),
                          str(tmp_path / "my.csv"), str(tmp_path / "my.npy.json"), "--force")
    assert str(tmp_path / "my.npy") + "," not in line  # only what exists is named
    assert not (tmp_path / "my.npy").exists()
    assert (tmp_path / "my.csv").read_text() == "a user's table\n" and (tmp_path / "my.npy.json").read_text() == "{}\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left

    result = cltt("export", tiny_run, "--embeddings", root, "--out", tmp_path / "my.npy", "--force")
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "my.npy").shape[0] == 10
    assert (tmp_path / "my.csv").read_text().startswith("clip,frame,row")
    assert json.loads((tmp_path / "my.npy.json").read_text())["features"] == "my.npy"



def test_projector_folder_is_checked_with_the_other_outputs_before_any_work(tiny_run, tmp_path):
    """Found by the hostile-user pass: ``--embeddings --projector`` wrote the .npy, .csv and
    .npy.json, then stopped (exit 2) on an existing ``_projector/`` folder, leaving the three files
    that refuse the rerun. The folder is now one of the outputs checked before any work."""
    root = tiny_run.parent.parent / "frames"
    (tmp_path / "my_projector").mkdir()
    assert_refused(cltt("export", tiny_run, "--embeddings", root, "--out", tmp_path / "my.npy", "--projector"),
                   str(tmp_path / "my_projector"), "--force")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_projector"]  # nothing written, nothing left
    result = cltt("export", tiny_run, "--embeddings", root, "--out", tmp_path / "my.npy", "--projector", "--force")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "my_projector" / "projector_config.pbtxt").is_file() and (tmp_path / "my.npy").is_file()


def test_projector_config_and_hint_hold_unusual_names(tiny_run, tmp_path):
    """Found by the hostile-user pass: a root named ``q"uo\\te`` wrote ``tensor_name:
    "play_epoch001_q"uo\\te"``, which protobuf cannot parse, and the printed ``tensorboard --logdir``
    hint broke on a folder with a space. The name is escaped, the hint shell-quoted."""
    text_format = pytest.importorskip("google.protobuf.text_format")
    projector = pytest.importorskip("tensorboard.plugins.projector")
    root = tmp_path / 'q"uo\\te'
    write_noise_clips(root, clips=1, frames=3)
    out = tmp_path / "with space"
    result = cltt("export", tiny_run, "--embeddings", root, "--out", out, "--projector")
    assert result.returncode == 0, result.stderr
    (folder,) = out.glob("*_projector")
    config = text_format.Parse((folder / "projector_config.pbtxt").read_text(), projector.ProjectorConfig())
    assert config.embeddings[0].tensor_name == f"tiny_cnn_epoch001_{root.name}"
    (hint,) = [line for line in result.stdout.splitlines() if "tensorboard --logdir" in line]
    assert shlex.split(hint.split("tensorboard --logdir ", 1)[1].removesuffix(")")) == [str(folder)]


def test_projector_strings_parse_back_to_themselves():
    text_format = pytest.importorskip("google.protobuf.text_format")
    projector = pytest.importorskip("tensorboard.plugins.projector")
    from cltt.export.projector import pbtxt_string

    for name in ('q"uo\\te', "it's", "tab\there\nline", "bell\x07 del\x7f", "naïve ✓", ""):
        config = text_format.Parse(f"embeddings {{ tensor_name: {pbtxt_string(name)} }}", projector.ProjectorConfig())
        assert config.embeddings[0].tensor_name == name

def test_case_03_hashed_name_keeps_a_foreign_sidecar(tiny_run, tmp_path):
    """Under a hashed name the same weights again are a no-op, but a sidecar that does not describe
    that file (edited, or someone else's) is not replaced without --force."""
    assert cltt("export", tiny_run, "--out", tmp_path).returncode == 0
    (weights,) = tmp_path.glob("*.safetensors")
    sidecar = weights.with_name(weights.name + ".json")
    assert json.loads(sidecar.read_text())["file"] == weights.name
    assert cltt("export", tiny_run, "--out", tmp_path).returncode == 0  # its own sidecar: nothing to refuse

    sidecar.write_text("my notes\n")
    before = weights.read_bytes()
    assert_refused(cltt("export", tiny_run, "--out", tmp_path), str(sidecar), "--force")
    assert sidecar.read_text() == "my notes\n" and weights.read_bytes() == before


def test_case_03_earlier_sidecar_naming_still_loads_and_is_never_run(tiny_run, tmp_path):
    """An export from before the new naming (sidecar ``X.json``) loads with load_encoder as before;
    cltt reads the description inside the file and never runs a sidecar's preprocessing text."""
    result = cltt("export", tiny_run, "--out", tmp_path / "old.safetensors")
    assert result.returncode == 0, result.stderr
    sidecar = json.loads((tmp_path / "old.safetensors.json").read_text())
    marker = tmp_path / "executed"
    sidecar["input"]["preprocess_python"] = f"open({str(marker)!r}, 'w').close()\n"
    (tmp_path / "old.json").write_text(json.dumps(sidecar))
    (tmp_path / "old.safetensors.json").unlink()
    encoder = load_encoder(tmp_path / "old.safetensors")
    with torch.no_grad():
        assert encoder(torch.zeros(2, 3, IMAGE_SIZE, IMAGE_SIZE)).shape == (2, 128)
    assert not marker.exists()


# --------------------------------------------------------------------------- case 18

OUTSIDE = """
import json, sys
sys.modules["cltt"] = None  # code outside cltt: importing it fails
import cv2, numpy as np, onnxruntime

sidecar_path, frames_root, index_path, model_path, out_path = sys.argv[1:]
description = json.load(open(sidecar_path))
namespace = {}
exec(description["input"]["preprocess_python"], namespace)
rows = [line.split(",") for line in open(index_path).read().splitlines()[1:]]
paths = [f"{frames_root}/{clip}/{frame}" for clip, frame, _ in rows]
size = description["input"]["shape"][-1]
mean = np.array(description["input"]["mean"], np.float32).reshape(1, 3, 1, 1)
std = np.array(description["input"]["std"], np.float32).reshape(1, 3, 1, 1)

def naive(path):  # the old sidecar's words: resize the short side to S, crop the centre
    image = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    height, width = image.shape[:2]
    scale = size / min(height, width)
    image = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    view = image[top:top + size, left:left + size].transpose(2, 0, 1)[None].astype(np.float32) / 255
    return (view - mean) / std

session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
(name,) = [i.name for i in session.get_inputs()]
run = lambda batch: session.run(None, {name: batch})[0]
exact = run(np.concatenate([namespace["preprocess"](p) for p in paths]))
rough = run(np.concatenate([naive(p) for p in paths]))
np.savez(out_path, exact=exact, naive=rough)
"""


def reproduce_outside(run_dir: Path, tmp_path: Path) -> tuple[np.ndarray, dict]:
    """(features cltt exports, the outside process's features): cltt's ``--embeddings``, against an
    ONNX export run by onnxruntime on frames prepared by the sidecar's source, cltt not importable."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    root = run_dir.parent.parent / "frames"
    model = tmp_path / "encoder.onnx"
    result = cltt("export", run_dir, "--format", "onnx", "--out", model)
    assert result.returncode == 0, result.stderr
    result = cltt("export", run_dir, "--embeddings", root, "--out", tmp_path / "features.npy", "train.device=cpu")
    assert result.returncode == 0, result.stderr
    script = tmp_path / "outside.py"
    script.write_text(OUTSIDE)
    outside = subprocess.run([sys.executable, str(script), str(model) + ".json", str(root), str(tmp_path / "features.csv"),
                              str(model), str(tmp_path / "outside.npz")], capture_output=True, text=True, timeout=300)
    assert outside.returncode == 0, outside.stderr
    return np.load(tmp_path / "features.npy"), dict(np.load(tmp_path / "outside.npz"))


def check_reproduced(run_dir: Path, tmp_path: Path) -> None:
    features, outside = reproduce_outside(run_dir, tmp_path)
    sidecars = [json.loads((tmp_path / name).read_text()) for name in ("encoder.onnx.json", "features.npy.json")]
    assert sidecars[0]["input"] == sidecars[1]["input"]  # the embeddings say how their frames were prepared
    assert features.shape == outside["exact"].shape and len(features) == 10
    np.testing.assert_allclose(outside["exact"], features, atol=1e-4, rtol=0)
    # the test can fail: the old sidecar's description, followed to the letter, lands far away
    assert np.abs(outside["naive"] - features).max() > 1e-2


def test_case_18_sidecar_preprocessing_reproduces_cltt_tiny(tiny_run, tmp_path):
    check_reproduced(tiny_run, tmp_path)


@pytest.mark.slow
def test_case_18_sidecar_preprocessing_reproduces_cltt_resnet18(tmp_path):
    check_reproduced(train_run(tmp_path, "resnet18"), tmp_path)


def test_case_18_sidecar_source_is_cltts_own_preprocessing(tmp_path):
    """The source needs numpy and cv2 only, and gives cltt's model input bit for bit: frames that
    cltt decodes at 1/2 and 1/4 of their size, one smaller than the model (enlarged), a PNG."""
    source = preprocess_source(IMAGE_SIZE)
    imports = {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports == {"__future__", "cv2", "numpy"}
    namespace: dict = {}
    exec(source, namespace)  # the test plays the outside user; cltt itself only writes this text
    rng = np.random.default_rng(18)
    reductions = []
    for (height, width), suffix in (((150, 200), ".jpg"), ((300, 220), ".jpg"), ((40, 30), ".jpg"), ((150, 200), ".png")):
        path = tmp_path / f"frame_{height}x{width}{suffix}"
        cv2.imwrite(str(path), cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (5, 5), 1.0))
        reductions.append(reduction_for(min(height, width), IMAGE_SIZE))
        view = center_resize(read_rgb(str(path), reductions[-1]), IMAGE_SIZE)  # what the frame stores hand the encoder
        inside = to_model_input(torch.from_numpy(view).permute(2, 0, 1)[None], torch.device("cpu")).numpy()
        outside = namespace["preprocess"](str(path))
        assert outside.dtype == np.float32 and outside.shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
        assert np.array_equal(outside, inside), path.name
    assert reductions == [2, 4, 1, 2]
