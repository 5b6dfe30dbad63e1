"""LoRA rounds on a tiny random Llama: tokenization as llama.cpp sees it, the completion-only
loss, training that lowers validation loss, and the files of a round."""

from __future__ import annotations

import hashlib
import json

import pytest

pytest.importorskip("peft")

import torch

from evolm.finetune.dataset import Example, build_dataset
from evolm.finetune.train import (
    TrainConfig,
    TrainError,
    _batch,
    _eval_loss,
    _nll,
    edited_spans,
    encode_example,
    train_adapter,
    train_lora,
)

from .conftest import tiny_llama


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_completion_prompts_are_tokenized_as_is(char_tokenizer):
    tok = char_tokenizer
    ex = Example("def f():\n", "    return 1\n", "x", 1, 0)
    enc, cut = encode_example(ex, tok, add_bos=False, max_len=100)
    assert enc is not None and not cut
    assert list(enc.input_ids) == _ids(tok, ex.prompt) + _ids(tok, ex.completion) + [
        tok.eos_token_id
    ]
    assert enc.n_prompt == len(ex.prompt)
    with_bos, _ = encode_example(ex, tok, add_bos=True, max_len=100)
    assert with_bos is not None and with_bos.input_ids == (tok.bos_token_id, *enc.input_ids)


def test_heal_trains_the_prompts_last_token_as_the_completions_first(char_tokenizer):
    tok = char_tokenizer
    ex = Example("def f():\n    ", "return 1\n", "x", 1, 0)
    plain, _ = encode_example(ex, tok, add_bos=False, max_len=100)
    healed, _ = encode_example(ex, tok, add_bos=False, max_len=100, heal=True)
    assert plain is not None and healed is not None
    assert healed.input_ids == plain.input_ids  # the same tokens ...
    assert healed.n_prompt == plain.n_prompt - 1  # ... one more of them labelled
    assert tok.decode(healed.input_ids[healed.n_prompt : healed.n_prompt + 1]) == " "
    chat = Example([{"role": "user", "content": "hi"}], "yo", "x", 1, 0)
    a, _ = encode_example(chat, tok, add_bos=False, max_len=100)
    b, _ = encode_example(chat, tok, add_bos=False, max_len=100, heal=True)
    assert a == b  # chat prompts are not healed by the backends


def test_an_example_without_eos_ends_with_its_text(char_tokenizer):
    tok = char_tokenizer
    ex = Example("x = ", "1\n    ", "x", 1, 0, eos=False)
    enc, _ = encode_example(ex, tok, add_bos=False, max_len=100)
    assert enc is not None and tok.eos_token_id not in enc.input_ids
    assert enc.input_ids[enc.n_prompt :] == tuple(_ids(tok, ex.completion))
    assert Example.from_dict(ex.to_dict()) == ex
    assert "eos" not in Example("a", "b", "x", 1, 0).to_dict()  # files as before the field


def test_chat_prompts_go_through_the_chat_template(char_tokenizer):
    ex = Example([{"role": "user", "content": "hi"}], "yo", "x", 1, 0)
    enc, _ = encode_example(ex, char_tokenizer, add_bos=False, max_len=100)
    assert enc is not None
    assert list(enc.input_ids[: enc.n_prompt]) == _ids(char_tokenizer, "[user] hi\n[assistant] ")


def test_long_examples_lose_the_start_of_their_prompt(char_tokenizer):
    ex = Example("abcdefghij", "xyz", "x", 1, 0)
    enc, cut = encode_example(ex, char_tokenizer, add_bos=False, max_len=8)
    assert cut and enc is not None and len(enc.input_ids) == 8
    assert (
        char_tokenizer.decode(enc.input_ids[: enc.n_prompt]) == "ghij"
    )  # 8 tokens: 4 of prompt, "xyz" and EOS
    none, _ = encode_example(ex, char_tokenizer, add_bos=False, max_len=4)
    assert none is None  # the completion and its EOS leave no room for a prompt


def test_loss_counts_completion_tokens_only_whatever_the_padding(char_tokenizer):
    tok = char_tokenizer
    model = tiny_llama(len(tok)).eval()
    examples = [Example("p" * 30, "abc", "x", 1, 0), Example("q" * 5, "defgh", "x", 2, 0)]
    encoded = [encode_example(e, tok, add_bos=False, max_len=100)[0] for e in examples]
    total, count = 0.0, 0
    with torch.no_grad():
        for enc in encoded:  # one by one, no padding, Hugging Face's own shifted loss
            ids = torch.tensor([enc.input_ids])
            labels = ids.clone()
            labels[0, : enc.n_prompt] = -100
            n = enc.n_completion
            total += float(model(input_ids=ids, labels=labels).loss) * n
            count += n
    batched = _eval_loss(torch, model, encoded, 2, tok.pad_token_id, "cpu")
    assert batched == pytest.approx(total / count, rel=1e-4)


SR = (
    "    a = 1\n"
    "    b = 2\n"
    "=======\n"
    "    a = 1\n"
    "    b = 3\n"
    ">>>>>>> REPLACE\n"
    "<<<<<<< SEARCH\n"
    "    c = 4\n"
    "=======\n"
    "    c = 4\n"
    ">>>>>>> REPLACE\n"
    "# End of edits\n"
)


def test_edited_spans_are_the_replace_lines_their_search_does_not_hold():
    spans = edited_spans(SR)
    assert [SR[a:b] for a, b in spans] == ["    b = 3\n"]
    # a block that changes nothing and a deletion write no new code; other formats have none
    assert edited_spans(SR.replace("    b = 3\n", "")) == []
    assert edited_spans("    return 1\n\n# End of draw()\n") == []


def test_edited_tokens_weigh_edit_weight_in_the_training_loss(char_tokenizer):
    tok = char_tokenizer
    model = tiny_llama(len(tok)).eval()
    enc, _ = encode_example(
        Example("<<<<<<< SEARCH\n", SR, "x", 1, 0), tok, add_bos=False, max_len=400
    )
    assert enc is not None
    start = SR.index("    b = 3")
    assert [i for i, e in enumerate(enc.edited) if e] == list(range(start, start + 10))
    with torch.no_grad():
        batch = _batch(torch, [enc], tok.pad_token_id, "cpu", edit_weight=4.0)
        plain, n = _nll(torch, model, batch)
        weighted, w = _nll(torch, model, batch, weighted=True)
        # by hand: each completion token's NLL, the edited ones counted 4 times
        ids = torch.tensor([enc.input_ids])
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        target = ids[0, 1:]
        nll = -logp[torch.arange(len(target)), target][enc.n_prompt - 1 :]
        mask = torch.tensor(enc.edited)
    assert n == enc.n_completion and w == pytest.approx(n + 3 * 10)
    assert float(plain) == pytest.approx(float(nll.sum()), rel=1e-4)
    assert float(weighted) == pytest.approx(float(nll.sum() + 3 * nll[mask].sum()), rel=1e-4)


def test_a_lora_round_lowers_validation_loss(fake_db, char_tokenizer):
    data = build_dataset([fake_db], format="elm_diff", accept="valid")
    assert data.val
    model = tiny_llama(len(char_tokenizer))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    cfg = TrainConfig(lr=5e-3, max_steps=20, batch_size=4, max_len=600, threads=1)
    peft_model, m = train_adapter(
        model,
        char_tokenizer,
        data.train,
        data.val,
        cfg,
        on_progress=lambda step, total, loss, tps: seen.append((step, total)),
    )
    assert seen == [(s, 20) for s in range(1, 21)] and m.steps == 20
    assert m.val_loss_before is not None and m.val_loss_after is not None
    assert m.val_loss_after < m.val_loss_before - 0.1
    assert m.train_loss is not None and m.first_loss is not None
    assert m.train_loss < m.first_loss
    assert m.truncated > 0 and m.tokens > 0 and m.tokens_per_s > 0
    base = peft_model.get_base_model().state_dict()
    for key, value in before.items():  # only the LoRA matrices learned
        name = key.replace(".weight", ".base_layer.weight")
        assert torch.equal(base.get(name, base.get(key)), value)


def test_train_lora_writes_the_adapter_the_gguf_and_the_card(gp_db, tiny_base, tmp_path):
    gguf = pytest.importorskip("gguf")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    data = build_dataset([gp_db], format="elm_diff", accept="valid")
    cfg = TrainConfig(max_steps=2, max_len=400, batch_size=2, rank=4, alpha=8.0, threads=1)
    result = train_lora(data, tmp_path / "out", base=tiny_base, config=cfg)
    out = tmp_path / "out"
    assert result.gguf == out / "adapter.gguf" and result.adapter_dir == out / "adapter"
    card = json.loads((out / "card.json").read_text())
    assert card["format"] == "elm_diff" and card["accept"] == "valid"
    assert card["sources"] == [
        {"path": str(gp_db.resolve()), "sha256": hashlib.sha256(gp_db.read_bytes()).hexdigest()}
    ]
    assert card["dataset"] == data.counts.to_dict()
    assert card["hyperparameters"]["rank"] == 4 and card["hyperparameters"]["max_steps"] == 2
    assert card["base_model"]["path"] == str(tiny_base.resolve())
    assert len(card["base_model"]["sha256"]) == 64
    metrics = card["metrics"]
    assert metrics["steps"] == 2 and metrics["val_loss_before"] is not None
    assert {"val_loss_after", "train_loss", "tokens", "tokens_per_s", "seconds"} <= set(metrics)
    assert card["evolm_version"] and card["files"]["gguf"] == "adapter.gguf"
    assert (out / "train.jsonl").exists() and (out / "val.jsonl").exists()

    reader = gguf.GGUFReader(str(out / "adapter.gguf"))
    assert reader.get_field("general.type").contents() == "adapter"
    assert reader.get_field("general.architecture").contents() == "llama"
    assert reader.get_field("adapter.type").contents() == "lora"
    assert reader.get_field("adapter.lora.alpha").contents() == 8.0
    shapes = {t.name: tuple(int(n) for n in t.shape) for t in reader.tensors}
    assert len(shapes) == 2 * 7 * 2  # 2 layers, 7 modules, A and B
    assert shapes["blk.1.attn_k.weight.lora_a"] == (64, 4)  # ne order: (in, r)
    assert shapes["blk.1.attn_k.weight.lora_b"] == (4, 32)  # (r, out): 2 kv heads of 16
    assert shapes["blk.0.ffn_down.weight.lora_a"] == (128, 4)

    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        plain = model(ids).logits
        adapted = PeftModel.from_pretrained(model, result.adapter_dir).eval()(ids).logits
    assert not torch.allclose(plain, adapted)  # the saved adapter holds what was learned


def test_bad_settings_fail_clearly(char_tokenizer, gp_db, tiny_base, tmp_path):
    with pytest.raises(ValueError, match="rank must be an int >= 1"):
        TrainConfig(rank=0)
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainConfig(schedule="step")
    with pytest.raises(ValueError, match="device must be one of"):
        TrainConfig(device="tpu")
    ex = [Example("a", "b", "x", 1, 0)]
    with pytest.raises(TrainError, match="cannot add LoRA"):
        train_adapter(
            tiny_llama(len(char_tokenizer)),
            char_tokenizer,
            ex,
            (),
            TrainConfig(target_modules=("nope",)),
        )
    with pytest.raises(TrainError, match="fits max_len"):
        train_adapter(
            tiny_llama(len(char_tokenizer)),
            char_tokenizer,
            [Example("a", "b" * 50, "x", 1, 0)],
            (),
            TrainConfig(max_len=10),
        )
    empty = build_dataset([gp_db], format="stored")
    with pytest.raises(TrainError, match="no training example"):
        train_lora(empty, tmp_path / "out", base=tiny_base)
    with pytest.raises(TrainError, match=r"neither a \.gguf file nor a model directory"):
        train_lora(build_dataset([gp_db], format="elm_diff"), tmp_path / "o", base=tmp_path)
