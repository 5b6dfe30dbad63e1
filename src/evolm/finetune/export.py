"""Write a LoRA adapter as a GGUF file that llama.cpp loads next to its base model.

llama.cpp (and ``llama_cpp.Llama(model_path=BASE.gguf, lora_path=ADAPTER.gguf)``) reads a LoRA
adapter from a GGUF file of its own, the format of llama.cpp's ``convert_lora_to_gguf.py``:

* metadata ``general.type = "adapter"``, ``general.architecture`` equal to the base model's
  (``"llama"`` for SmolLM2; llama.cpp refuses a mismatch), ``adapter.type = "lora"`` and
  ``adapter.lora.alpha`` (a float32). llama.cpp scales each product by ``alpha / rank``, with the
  rank read from the tensors, which is peft's ``lora_alpha / r``.
* two tensors per adapted weight, named after the base GGUF tensor: ``blk.0.attn_q.weight.lora_a``
  and ``blk.0.attn_q.weight.lora_b``. ``lora_a`` is peft's ``lora_A`` weight as it is, torch shape
  ``(r, in_features)``; ``lora_b`` is ``lora_B``, ``(out_features, r)``. In GGML order (``ne``,
  innermost first) that is ``a.ne = [in, r]`` and ``b.ne = [r, out]``, which llama.cpp checks
  against the base weight (``ne = [in, out]``): ``w.ne[0] == a.ne[0]``, ``w.ne[1] == b.ne[1]``,
  ``a.ne[1] == b.ne[0]``. Both are written as float32.

Names: Hugging Face module names map to GGUF names through the ``gguf`` package's table
(``model.layers.N.self_attn.{q,k,v,o}_proj`` -> ``blk.N.attn_{q,k,v,output}``,
``model.layers.N.mlp.{gate,up,down}_proj`` -> ``blk.N.ffn_{gate,up,down}``).

**The q/k permutation.** llama.cpp computes rotary embeddings on interleaved pairs of a head's
dimensions, where Hugging Face Llama rotates its two halves. llama.cpp's converter therefore
reorders the rows (output features) of every ``q_proj`` and ``k_proj`` weight, per head::

    w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

with ``n_head`` the number of attention heads for q and of key/value heads for k (transformers
undoes this when it loads a GGUF). A LoRA update ``B @ A`` of those weights must be reordered the
same way, which means permuting the rows of ``lora_b`` (``lora_a`` acts on the input side and is
unchanged). Without it the adapter loads without complaint and silently computes something else;
``tests/finetune/test_export.py`` compares greedy tokens of transformers + peft with llama.cpp +
the adapter to prove the layout.

Only llama-architecture models (Llama, SmolLM2, Mistral as llama.cpp converts it) are supported:
they are the ones whose layout is checked here. When the base GGUF is given, every adapted
tensor is checked against it (name present, shape matching) before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ExportError",
    "export_gguf_adapter",
    "gguf_tensor_name",
    "lora_weights",
    "permute_qk",
    "write_gguf_lora",
]

_INSTALL = "pip install 'evolm[train]'"
#: Hugging Face ``model_type`` -> llama.cpp architecture, for the models whose layout is known.
_ARCHITECTURES = {"llama": "llama", "mistral": "llama"}
_PEFT_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.\w+)?\.weight$"
)


class ExportError(ValueError):
    """The adapter cannot be written as GGUF: unsupported architecture or adapter kind, a module
    llama.cpp has no tensor for, or shapes that do not match the base model."""


def _gguf() -> Any:
    try:
        import gguf
    except ImportError as exc:
        raise ExportError(f"writing a GGUF adapter needs the gguf package: {_INSTALL}") from exc
    return gguf


def permute_qk(b: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder the rows of a q or k projection's ``lora_b`` (shape ``(out, r)``) the way
    llama.cpp's converter reorders the rows of the weight itself (module docstring).

    Raises:
        ExportError: ``out`` is not a multiple of ``2 * n_head``.
    """
    out = b.shape[0]
    if n_head < 1 or out % (2 * n_head):
        raise ExportError(
            f"cannot permute {out} rows for {n_head} heads (need a multiple of 2*heads)"
        )
    return b.reshape(n_head, 2, out // n_head // 2, *b.shape[1:]).swapaxes(1, 2).reshape(b.shape)


def gguf_tensor_name(module: str, n_blocks: int, architecture: str = "llama") -> str:
    """The GGUF weight name (``blk.0.attn_q.weight``) of a Hugging Face linear module
    (``model.layers.0.self_attn.q_proj``).

    Raises:
        ExportError: the architecture is not supported, or it has no tensor for the module.
    """
    gguf = _gguf()
    if architecture != "llama":
        raise ExportError(
            f"GGUF adapters are written for llama-architecture models only, not {architecture!r}"
        )
    name = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_blocks).get_name(module)
    if name is None:
        raise ExportError(f"llama.cpp has no tensor for the module {module!r}; adapt another one")
    return f"{name}.weight"


def _base_shapes(base_gguf: Path, architecture: str) -> dict[str, tuple[int, ...]]:
    gguf = _gguf()
    reader = gguf.GGUFReader(str(base_gguf))
    field = reader.get_field("general.architecture")
    arch = field.contents() if field is not None else None
    if arch != architecture:
        raise ExportError(
            f"the base GGUF {base_gguf} has architecture {arch!r}, the adapter {architecture!r}"
        )
    return {t.name: tuple(int(n) for n in t.shape) for t in reader.tensors}


def write_gguf_lora(
    weights: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    *,
    alpha: float,
    n_head: int,
    n_head_kv: int,
    n_blocks: int,
    architecture: str = "llama",
    base_gguf: str | Path | None = None,
) -> Path:
    """Write LoRA weights as a llama.cpp GGUF adapter.

    Args:
        weights: Hugging Face module name (``model.layers.0.self_attn.q_proj``) -> ``(A, B)``,
            with ``A`` of shape ``(r, in_features)`` and ``B`` of shape ``(out_features, r)``,
            as peft stores them (:func:`lora_weights`).
        path: the ``.gguf`` file to write.
        alpha: the LoRA alpha (the update is scaled by ``alpha / r``).
        n_head, n_head_kv: attention and key/value heads, for the q/k row permutation.
        n_blocks: the model's layers.
        architecture: the llama.cpp architecture (only ``"llama"``).
        base_gguf: the base model's GGUF; when given, each tensor is checked against it.

    Returns:
        ``path``.

    Raises:
        ExportError: unsupported architecture, unknown module, inconsistent ranks or shapes that
            do not fit the base model.
    """
    gguf = _gguf()
    if not weights:
        raise ExportError("the adapter holds no LoRA weights")
    shapes = _base_shapes(Path(base_gguf), architecture) if base_gguf is not None else None
    tensors: list[tuple[str, np.ndarray]] = []
    for module in sorted(weights, key=_natural):
        a, b = (np.ascontiguousarray(np.asarray(x, dtype=np.float32)) for x in weights[module])
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise ExportError(
                f"{module}: lora_A {a.shape} and lora_B {b.shape} are not (r, in) and (out, r)"
            )
        name = gguf_tensor_name(module, n_blocks, architecture)
        if module.endswith("q_proj"):
            b = permute_qk(b, n_head)
        elif module.endswith("k_proj"):
            b = permute_qk(b, n_head_kv)
        if shapes is not None:
            want = (a.shape[1], b.shape[0])
            have = shapes.get(name)
            if have is None:
                raise ExportError(f"the base GGUF has no tensor {name} (for {module})")
            if have != want:
                raise ExportError(
                    f"{module}: the adapter is for a {want[0]}x{want[1]} weight, the base GGUF's "
                    f"{name} is {have[0]}x{have[1]} (another model?)"
                )
        tensors += [(f"{name}.lora_a", a), (f"{name}.lora_b", np.ascontiguousarray(b))]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out), architecture)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
        for name, array in tensors:
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return out


def _natural(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def lora_weights(model: Any, adapter: str = "default") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The LoRA matrices of a peft model: module name -> ``(A, B)`` as float32 arrays.

    Raises:
        ExportError: the model has no LoRA weights for ``adapter``.
    """
    parts: dict[str, dict[str, np.ndarray]] = {}
    for key, value in model.state_dict().items():
        m = _PEFT_KEY.match(key)
        if m is None or f".{adapter}." not in key:
            continue
        parts.setdefault(m["module"], {})[m["ab"]] = value.detach().float().cpu().numpy()
    out = {}
    for module, ab in parts.items():
        if set(ab) != {"A", "B"}:
            raise ExportError(f"{module} has lora_{''.join(ab)} but not both LoRA matrices")
        out[module] = (ab["A"], ab["B"])
    if not out:
        raise ExportError(f"the model holds no LoRA weights for adapter {adapter!r}")
    return out


def export_gguf_adapter(
    model: Any, path: str | Path, *, base_gguf: str | Path | None = None, adapter: str = "default"
) -> Path:
    """Write the LoRA adapter of a peft model (on a llama-architecture base) as a GGUF file that
    llama.cpp loads with the base model's GGUF.

    Args:
        model: a ``peft.PeftModel`` with a plain LoRA adapter (no DoRA, no rsLoRA scaling).
        path: the ``.gguf`` file to write.
        base_gguf: the base GGUF, to check names and shapes against (recommended).
        adapter: the peft adapter name.

    Raises:
        ExportError: see :func:`write_gguf_lora`; also a DoRA or rsLoRA adapter (llama.cpp applies
            neither), or a base model that is not llama-architecture.
    """
    cfg = model.peft_config[adapter]
    if getattr(cfg, "use_dora", False) or getattr(cfg, "use_rslora", False):
        raise ExportError("llama.cpp applies plain LoRA only: train without use_dora/use_rslora")
    if getattr(cfg, "alpha_pattern", None):
        raise ExportError(
            "llama.cpp applies one alpha to every module: train without alpha_pattern"
        )
    config = model.get_base_model().config
    model_type = getattr(config, "model_type", None)
    architecture = _ARCHITECTURES.get(str(model_type))
    if architecture is None:
        raise ExportError(
            f"GGUF adapters are written for llama-architecture models only (llama, mistral), not "
            f"model_type {model_type!r}; the peft adapter directory still works with transformers"
        )
    n_head = int(config.num_attention_heads)
    return write_gguf_lora(
        lora_weights(model, adapter),
        path,
        alpha=float(cfg.lora_alpha),
        n_head=n_head,
        n_head_kv=int(getattr(config, "num_key_value_heads", None) or n_head),
        n_blocks=int(config.num_hidden_layers),
        architecture=architecture,
        base_gguf=base_gguf,
    )
