"""Write an encoder as safetensors, TorchScript or ONNX, each with a JSON sidecar; load one back.

Every format takes ``[N, 3, S, S]`` float32 frames, RGB, ImageNet-normalised, at the recipe's
image size ``S`` with any batch size ``N``, and returns ``[N, D]``. A file is named after its
run, epoch and the first 8 hex digits of its SHA-256, as timm and torch.hub name weights
(``quickstart_epoch010-1a2b3c4d.safetensors``), so ``sha256sum`` checks it. The sidecar (the
file's name plus ``.json``: ``X.safetensors.json``, ``X.onnx.json``, never shared by two
formats) holds the architecture, the input convention, the source checkpoint, epoch and step,
the resolved recipe, and the file's and the weights' SHA-256; the same description (without
the hashes) is also stored inside the file itself, so :func:`load_encoder` needs nothing else
(exports from before this sidecar naming, with ``X.json``, load the same way). The sidecar's
``input.preprocess_python`` turns an image file into the input exactly as cltt does
(:mod:`cltt.export.preprocess`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from cltt.engine.run_files import EXPORTS_DIR
from cltt.errors import CLTTError, writing
from cltt.export.source import ExportSource, FrameEncoder, build_frame_encoder
from cltt.recipe import ExportConfig

FORMATS = typing.get_args(typing.get_type_hints(ExportConfig)["format"])  # safetensors, torchscript, onnx
SUFFIXES = {"safetensors": ".safetensors", "torchscript": ".pt", "onnx": ".onnx"}
METADATA_KEY = "cltt"  # safetensors metadata key, TorchScript extra file stem, ONNX model property
INPUT_NAME = "frames"
CHECK_BATCH = 3  # frames in the batch that compares an exported graph with PyTorch
ELSEWHERE = "free space there, or export elsewhere with --out DIR"  # after a failed write


@dataclass
class ExportResult:
    """What :func:`export_encoder` wrote."""

    path: Path
    sidecar: Path
    sha256: str  # of the file
    size_bytes: int
    max_difference: float | None  # max |exported - PyTorch| on a random batch; None: not checked


def export_encoder(source: ExportSource, fmt: str, with_head: bool = False, out: str | Path | None = None,
                   onnx_opset: int | None = None, force: bool = False) -> ExportResult:
    """Write ``source``'s encoder (with its projection head when ``with_head``) as ``fmt``.

    ``out``: a folder (created if missing; the file gets a hashed name) or a file name ending
    in the format's suffix; default ``RUN_DIR/exports/``. ``onnx_opset`` defaults to the
    recipe's ``export.onnx_opset``. The file and its sidecar replace existing files only with
    ``force``, checked before any work for a named file; a hashed name is known only once the
    file is written, and a repeated export of the same weights under it is a no-op.
    """
    if fmt not in FORMATS:
        raise CLTTError(f"export format {fmt!r} is not known; choose one of {', '.join(FORMATS)}")
    suffix = SUFFIXES[fmt]
    folder, fixed_name = destination(out, source.run_dir / EXPORTS_DIR, suffix)
    if fixed_name:  # refused before any work
        refuse_existing([folder / fixed_name, sidecar_of(folder / fixed_name)], force)
    make_folder(folder)
    encoder = source.frame_encoder(with_head).cpu()  # traced on the CPU, whatever ran before
    description = source.describe(with_head)
    description["kind"] = fmt
    example = torch.randn(2, 3, source.recipe.data.image_size, source.recipe.data.image_size,
                          generator=torch.Generator().manual_seed(0))
    writers: dict[str, Callable[..., float | None]] = {
        "safetensors": lambda path: _write_safetensors(encoder, path, description),
        "torchscript": lambda path: _write_torchscript(encoder, path, description, example),
        "onnx": lambda path: _write_onnx(encoder, path, description, example,
                                         onnx_opset or source.recipe.export.onnx_opset),
    }
    stem = source.stem(with_head)
    temporary = folder / f".{stem}.tmp-{os.getpid()}{suffix}"
    try:
        with writing(folder / (fixed_name or f"{stem}-SHA8{suffix}"), ELSEWHERE):  # a full disk: named, in one line
            difference = writers[fmt](temporary)
        digest = file_sha256(temporary)
        path = folder / (fixed_name or f"{stem}-{digest[:8]}{suffix}")
        if path.exists() and not force and file_sha256(path) != digest:
            raise CLTTError(f"{path} exists with other contents; pass --force to replace it, or another --out")
        if not fixed_name and not describes(sidecar_of(path), digest):  # not this same file's sidecar
            refuse_existing([sidecar_of(path)], force)
        shareable(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    sidecar = sidecar_of(path)
    description.update(file=path.name, sha256=digest, weights_sha256=weights_sha256(encoder),
                       load=_load_hint(fmt, path.name))
    with writing(sidecar, ELSEWHERE):
        sidecar.write_text(json.dumps(description, indent=2) + "\n")
    return ExportResult(path, sidecar, digest, path.stat().st_size, difference)


def shareable(path: Path) -> None:
    """Give a file the permissions of any file the user creates (0666 less the umask): writers
    that use private temporary files leave 0600, which breaks sharing on a cluster."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def load_encoder(path: str | Path) -> nn.Module:
    """Load an encoder written by ``cltt export``, in eval mode, on the CPU::

        encoder = load_encoder("runs/quickstart/exports/quickstart_epoch010-1a2b3c4d.safetensors")
        features = encoder(frames)   # [N, 3, S, S] float, ImageNet-normalised -> [N, D]

    ``.safetensors``: a :class:`~cltt.export.FrameEncoder` rebuilt from the architecture stored
    in the file, weights loaded strictly. ``.pt``: the TorchScript module. ``D`` is the
    representation size, or the projection size for an export made with the head.
    """
    path = Path(path)
    if not path.is_file():
        raise CLTTError(f"exported encoder {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == SUFFIXES["torchscript"]:
        try:
            with _quiet_jit():
                return torch.jit.load(str(path), map_location="cpu").eval()
        except RuntimeError as err:
            raise CLTTError(f"{path} is not a TorchScript file ({_first_line(err)})") from None
    if suffix == SUFFIXES["onnx"]:
        raise CLTTError(f"{path} is an ONNX graph; run it with onnxruntime.InferenceSession('{path}') "
                        f"and input name '{INPUT_NAME}'")
    if suffix != SUFFIXES["safetensors"]:
        raise CLTTError(f"{path}: load_encoder reads .safetensors and .pt (TorchScript) files from cltt export")
    description, tensors = _read_safetensors(path)
    encoder = build_frame_encoder(description["architecture"])
    try:
        encoder.load_state_dict(tensors)
    except RuntimeError as err:
        raise CLTTError(f"the weights in {path} do not fit the architecture it describes ({_first_line(err)})") from None
    return encoder.eval()


# --------------------------------------------------------------------------- output paths


def destination(out: str | Path | None, default_folder: Path, suffix: str) -> tuple[Path, str | None]:
    """(folder, file name) for ``out``; the name is None when the caller should choose it.

    ``out`` ending in ``suffix`` names the file; any other ``out`` is a folder.
    """
    if out is None:
        return default_folder, None
    out = Path(out)
    if out.suffix.lower() == suffix:
        return out.parent, out.name
    if out.suffix and not out.is_dir() and not out.exists():
        raise CLTTError(f"--out {out} ends in {out.suffix} but this export writes a {suffix} file; "
                        f"pass a folder or a name ending in {suffix}")
    if out.exists() and not out.is_dir():
        raise CLTTError(f"--out {out} is an existing file; pass a folder or a name ending in {suffix}")
    return out, None


def sidecar_of(path: Path) -> Path:
    """The JSON sidecar of an exported file: its whole name plus ``.json`` (``X.safetensors.json``,
    ``X.npy.json``), so the exports of one name in two formats never share, or replace, one."""
    return path.with_name(path.name + ".json")


def refuse_existing(paths: Iterable[Path], force: bool) -> None:
    """Unless ``force``, one error naming every one of ``paths`` that exists (a dangling link
    included): called with all the files a command will write, before it writes any."""
    existing = [str(path) for path in paths if path.exists() or path.is_symlink()]
    if existing and not force:
        one = len(existing) == 1
        raise CLTTError(f"{', '.join(existing)} {'exists' if one else 'exist'}; pass --force to replace "
                        f"{'it' if one else 'them'}, or another --out")


def describes(sidecar: Path, digest: str) -> bool:
    """True when ``sidecar`` is a cltt sidecar of the file whose SHA-256 is ``digest`` (read as
    JSON data, never run); rewriting it loses nothing."""
    try:
        return json.loads(sidecar.read_text()).get("sha256") == digest
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False


def make_folder(folder: Path) -> None:
    """Create ``folder`` and its parents; one clear error when that is impossible."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CLTTError(f"cannot create output folder {folder} ({err.strerror or err}); pass another --out") from None


# --------------------------------------------------------------------------- hashes


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (what ``sha256sum`` prints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_sha256(module: nn.Module) -> str:
    """Hex SHA-256 of a module's tensors (names, dtypes, shapes, bytes), independent of the file format."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{list(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- formats


def _write_safetensors(encoder: FrameEncoder, path: Path, description: dict) -> None:
    tensors = {name: tensor.detach().contiguous() for name, tensor in encoder.state_dict().items()}
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(description, sort_keys=True)})
    return None


def _read_safetensors(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError) as err:
        raise CLTTError(f"{path} is not a readable safetensors file ({_first_line(err)})") from None
    if METADATA_KEY not in metadata:
        raise CLTTError(f"{path} was not written by cltt export (no '{METADATA_KEY}' metadata); "
                        "to start training from plain backbone weights use model.weights=PATH")
    return json.loads(metadata[METADATA_KEY]), tensors


def _write_torchscript(encoder: FrameEncoder, path: Path, description: dict, example: torch.Tensor) -> float:
    """Trace (not script) the encoder: torchvision's models trace cleanly, and a traced graph
    keeps the batch axis free for a plain feed-forward network."""
    with _quiet_jit(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(encoder, example)
        torch.jit.save(traced, str(path), _extra_files={f"{METADATA_KEY}.json": json.dumps(description, sort_keys=True)})
        loaded = torch.jit.load(str(path), map_location="cpu")
    return _max_difference(encoder, lambda batch: loaded(batch), example.shape[-1])


@contextlib.contextmanager
def _quiet_jit():
    """torch 2.10+ marks torch.jit deprecated (FutureWarning); TorchScript files still load in
    C++ and TorchServe, which is why a user asks for them, so the warning is not theirs to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=FutureWarning)
        yield


def _write_onnx(encoder: FrameEncoder, path: Path, description: dict, example: torch.Tensor, opset: int) -> float | None:
    """Trace with torch's TorchScript-based ONNX exporter (``dynamo=False``).

    It needs only the ``onnx`` package; the torch.export-based exporter (torch's default
    since 2.9) would also need ``onnxscript``, and gains nothing for a plain feed-forward
    encoder. The batch axis is dynamic; the image size is fixed at the recipe's.
    """
    if importlib.util.find_spec("onnx") is None:
        raise CLTTError("--format onnx needs the onnx package: pip install 'cltt[onnx]' (onnx and onnxruntime)")
    import onnx

    output_name = description["architecture"]["output"]
    # No torch.no_grad() here: without gradients, nn.MultiheadAttention (the ViTs) takes a fused
    # fast path, aten::_native_multi_head_attention, that the exporter cannot translate.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy TorchScript-based ONNX export"
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            torch.onnx.export(encoder, (example,), str(path), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[output_name],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, output_name: {0: "batch"}})
        except torch.onnx.OnnxExporterError as err:
            raise CLTTError(f"ONNX export at opset {opset} failed ({_first_line(err)}); "
                            "try another export.onnx_opset, or --format torchscript") from None
    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, {METADATA_KEY: json.dumps(description, sort_keys=True)})
    onnx.save(graph, str(path))
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return _max_difference(encoder, lambda batch: torch.from_numpy(session.run(None, {INPUT_NAME: batch.numpy()})[0]),
                           example.shape[-1])


def _max_difference(encoder: FrameEncoder, exported: Callable[[torch.Tensor], torch.Tensor], size: int) -> float:
    """Max |exported(x) - encoder(x)| on a random batch of another size than the traced one."""
    batch = torch.randn(CHECK_BATCH, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return float((exported(batch) - encoder(batch)).abs().max())


def _load_hint(fmt: str, name: str) -> str:
    if fmt == "onnx":
        return f"onnxruntime.InferenceSession('{name}').run(None, {{'{INPUT_NAME}': frames}})[0]"
    return f"from cltt.export import load_encoder; encoder = load_encoder('{name}')"


def _first_line(err: BaseException) -> str:
    return ((str(err).strip().splitlines() or [type(err).__name__])[0])[:160]
