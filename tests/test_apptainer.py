"""A real Apptainer build of containers/cltt.def, and the image at work: its %test, the pinned
versions inside, a preempted train that exits 75 ("requeue me", slurm/train.sh's contract) and
resumes, and `cltt sweep --slurm` finding its template inside the image.

Slow and opt-in (``pytest -m slow tests/test_apptainer.py``, about 10 minutes, and 2 more the
first time for the base image: the build installs torch with its CUDA libraries and packs a
3.5 GB SIF). Needs root and the Apptainer of ``../shared/apptainer/sid-apptainer.sh``
(``CLTT_SID_APPTAINER``); skipped with the reason where either is missing. No registry is reachable there, so the base image is a local
stand-in for ``python:3.11-slim-bookworm`` (Debian 12, its Python 3.11 and pip), built once with
debootstrap and kept at ``CLTT_APPTAINER_BASE``; the definition is built from it with
``--build-arg BOOTSTRAP=localimage --build-arg BASE=base.sif``, the install line unchanged.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import cltt
from cltt.engine import run_files

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SID = Path(os.environ.get("CLTT_SID_APPTAINER", REPO.parent / "shared" / "apptainer" / "sid-apptainer.sh"))
BASE = Path(os.environ.get("CLTT_APPTAINER_BASE", "/var/tmp/cltt-apptainer/base-bookworm-py311.sif"))
# What the definition's %files copies, from a clean copy of the checkout (no runs, no caches).
CONTEXT = ("pyproject.toml", "setup.cfg", "constraints.txt", "README.md", "cltt", "recipes", "slurm", "containers")
SMOKE = ("train.device=cpu", "model.backbone=tiny_cnn", "data.image_size=32", "data.num_workers=0",
         "extract.synthetic.clips=6", "extract.synthetic.frames=8", "extract.synthetic.size=32",
         "extract.synthetic.max_objects=3", "train.batch_size=4", "train.max_batches_per_epoch=2")


def sid(*args: str, cwd: Path, timeout: float = 600, userns: bool = False) -> subprocess.CompletedProcess:
    """CMD run in the sid root filesystem where Apptainer lives; only ``cwd`` is visible there."""
    command = [str(SID), "run", *(["--userns"] if userns else []), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def debian_mirror() -> str:
    if os.environ.get("CLTT_DEBIAN_MIRROR"):
        return os.environ["CLTT_DEBIAN_MIRROR"]
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    match = re.search(r"^URIs:\s*(\S+)", sources.read_text(), re.MULTILINE) if sources.is_file() else None
    return match.group(1) if match else "http://deb.debian.org/debian"


def build_local_base(dest: Path) -> None:
    """Debian 12 with Python 3.11 and pip as a SIF, made to behave like python:3.11-slim-bookworm."""
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is missing (apt-get install debootstrap)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    rootfs = dest.parent / "base-rootfs.partial"
    shutil.rmtree(rootfs, ignore_errors=True)
    done = subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-pip,ca-certificates",
                           "bookworm", str(rootfs), debian_mirror()], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # pip installs into the system Python, as in the python image (Debian marks it as apt's).
    for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    # No device nodes: Apptainer mounts /dev, and a build with %post cannot create them.
    for entry in (rootfs / "dev").iterdir():
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    # This machine's CA bundle, so that pip in the build trusts what the host trusts (a network
    # that re-signs TLS with a local CA); Debian's pip reads the system bundle.
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/ca-certificates.crt")
    done = sid("apptainer", "build", "-F", dest.name + ".partial", rootfs.name + "/", cwd=dest.parent, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (dest.parent / (dest.name + ".partial")).rename(dest)
    shutil.rmtree(rootfs, ignore_errors=True)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """containers/cltt.def built into ctx/cltt.sif; returns ctx, the only folder visible inside."""
    if not SID.is_file():
        pytest.skip(f"no Apptainer here: {SID} is missing (set CLTT_SID_APPTAINER)")
    if os.geteuid() != 0:
        pytest.skip("sid-apptainer.sh needs root (namespaces, mounts, debootstrap)")
    done = subprocess.run([str(SID), "setup"], capture_output=True, text=True, timeout=1200)  # once, about 2 min
    if done.returncode != 0:
        pytest.skip(f"sid-apptainer.sh setup failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    if not BASE.is_file():
        build_local_base(BASE)
    ctx = tmp_path_factory.mktemp("apptainer")
    for name in CONTEXT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, ctx / name, ignore=shutil.ignore_patterns("__pycache__", ".cltt"))
        else:
            shutil.copy(source, ctx / name)
    shutil.copy(BASE, ctx / "base.sif")
    done = sid("apptainer", "build", "--build-arg", "BOOTSTRAP=localimage", "--build-arg", "BASE=base.sif",
               "cltt.sif", "containers/cltt.def", cwd=ctx, timeout=2700, userns=True)
    (ctx / "build.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    # The build ran %test: cltt --version and a two-step CPU train inside the image.
    assert "cltt %test passed" in done.stdout + done.stderr
    (ctx / "base.sif").unlink()
    yield ctx
    (ctx / "cltt.sif").unlink()  # 3.5 GB; pytest keeps the last three temporary folders


def test_test_section_runscript_and_help(image):
    done = sid("apptainer", "test", "cltt.sif", cwd=image)
    assert done.returncode == 0 and "cltt %test passed" in done.stdout, done.stdout + done.stderr
    done = sid("apptainer", "run", "cltt.sif", "--version", cwd=image)
    assert done.stdout.strip() == f"cltt, version {cltt.__version__}", done.stdout + done.stderr
    done = sid("apptainer", "run-help", "cltt.sif", cwd=image)
    assert "apptainer exec --nv --bind /N/project,/N/scratch,/N/slate cltt.sif" in done.stdout
    done = sid("apptainer", "inspect", "--labels", "cltt.sif", cwd=image)
    assert f"org.opencontainers.image.version: {cltt.__version__}" in done.stdout


def test_pinned_versions_inside(image):
    """Every package of constraints.txt that the image has is at its pinned version."""
    done = sid("apptainer", "exec", "cltt.sif", "pip", "list", "--format=freeze", cwd=image)
    assert done.returncode == 0, done.stderr
    inside = {}
    for line in done.stdout.splitlines():
        name, _, version = line.partition("==")
        inside[name.lower().replace("_", "-")] = version
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version.strip()
    assert inside["torch"] == pins["torch"] and inside["torchvision"] == pins["torchvision"]
    differ = {name: (inside[name], pin) for name, pin in pins.items() if name in inside and inside[name] != pin}
    assert not differ, f"installed (inside, pinned): {differ}"


def test_preempted_train_exits_75_then_resumes(image):
    """What slurm/train.sh relies on: inside the image there is no scontrol, so a warned trainer
    saves and exits 75 for the batch script to requeue; the next run continues the run dir."""
    work = image / "preempt"
    work.mkdir()
    smoke = " ".join(SMOKE)
    script = f"""
        export SLURM_JOB_ID=4242
        apptainer exec cltt.sif cltt train /opt/cltt/recipes/quickstart.yaml {smoke} \\
            data.root=preempt/objects data.synthetic=rotating-objects train.out_dir=preempt/runs train.epochs=1000 >preempt/log 2>&1 &
        pid=$!
        tries=0
        until grep -q '^epoch 2/' preempt/log || [ "$tries" -ge 600 ]; do sleep 0.2; tries=$((tries + 1)); done
        kill -USR1 "$pid"
        wait "$pid"
        echo "exit $?"
    """
    done = sid("sh", "-c", script, cwd=image, timeout=600)
    log = (work / "log").read_text()
    assert done.stdout.strip().endswith("exit 75"), done.stdout + done.stderr + log
    assert "scontrol is not available here; the batch script should requeue job 4242" in log
    stopped = re.search(r"saved epoch (\d+) batch", log)
    assert stopped, log
    # Resume, with the run shortened to end one epoch after the one it stopped in.
    done = sid("apptainer", "exec", "cltt.sif", "cltt", "resume", "preempt/runs/quickstart", "--change-length",
               f"train.epochs={int(stopped.group(1)) + 1}", cwd=image, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"resumed from {run_files.CHECKPOINT_PREFIX}_step_" in done.stdout + done.stderr
    assert (work / "runs" / "quickstart" / run_files.FINAL_CHECKPOINT).is_file()


def test_sweep_finds_its_template_inside(image):
    """The editable install keeps slurm/array.sh.tmpl beside the package, where render.py looks."""
    done = sid("apptainer", "exec", "cltt.sif", "cltt", "sweep", "/opt/cltt/recipes/quickstart.yaml",
               "--grid", "train.lr=1e-3,3e-4", "sweep.slurm.apptainer_image=cltt.sif", "--slurm", "--dry-run",
               cwd=image)
    assert done.returncode == 0, done.stdout + done.stderr
    script = image / "sweeps" / "quickstart" / "sweep.sbatch"
    assert "apptainer_image=cltt.sif" in script.read_text()
