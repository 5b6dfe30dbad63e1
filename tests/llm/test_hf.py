"""The transformers backend: a tiny randomly initialised Llama built here (fast), and the real
SmolLM2-135M-Instruct weights loaded from the bundled GGUF (slow). Nothing touches the hub."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from evolm.llm import HFLLM, Completion, LLMError, Request, make_backend

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch", reason="the hf backend needs torch: pip install 'evolm[hf]'")
transformers = pytest.importorskip("transformers", reason="pip install 'evolm[hf]'")

WORDS = (
    "def",
    "draw",
    "return",
    "import",
    "numpy",
    "as",
    "np",
    "the",
    "a",
    "red",
    "blue",
    "disk",
    "square",
    "circle",
    "image",
    "array",
    "x",
    "y",
    "for",
    "in",
    "range",
    "if",
    "else",
    "print",
    "and",
    "or",
    "not",
    "with",
    "is",
    "of",
    "to",
)


def tiny_model(root: Path, chat_template: str | None = None) -> Path:
    """A 2-layer Llama (hidden 64) with random weights and a word-level tokenizer that has no
    pad token, saved as a model directory."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    if chat_template:
        tok.chat_template = chat_template
    config = transformers.LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        initializer_range=0.5,  # peaked logits, so greedy decoding has clear winners
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(root)
    tok.save_pretrained(root)
    return root


def run(llm: HFLLM, reqs: Sequence[Request]) -> list[Completion]:
    return asyncio.run(llm.generate(reqs))


def words(n: int, start: int = 0) -> str:
    return " ".join(WORDS[(start + i) % len(WORDS)] for i in range(n))


def completion(n_words: int, **kw: object) -> Request:
    options: dict[str, object] = {"max_tokens": 12, "temperature": 0.0, "seed": 1, **kw}
    return Request(kind="completion", prompt=words(n_words), **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> HFLLM:
    root = tiny_model(tmp_path_factory.mktemp("tiny"))
    return HFLLM(root, device="cpu", concurrency=8)


def test_every_decoder_model_gets_a_pad_token_and_left_padding(tiny: HFLLM) -> None:
    tok = tiny.tokenizer
    assert tok.pad_token == "</s>" and tok.padding_side == "left"
    assert tiny.model == tiny.model_path.name and tiny.context_length == 128


def test_concurrent_requests_are_generated_as_one_left_padded_batch(tiny: HFLLM) -> None:
    reqs = [completion(n, seed=n) for n in (3, 9, 5, 14)]
    alone = [run(tiny, [r])[0] for r in reqs]
    before = len(tiny.batch_sizes)
    batched = run(tiny, reqs)
    assert tiny.batch_sizes[before:] == [4]
    for a, b, r in zip(alone, batched, reqs, strict=True):
        assert a.ok and b.ok
        assert b.tokens_in == tiny.count_tokens(r) and b.extras["batch_size"] == 4
        # greedy decoding of a left-padded row equals the row decoded alone
        assert a.text == b.text and a.tokens_out == b.tokens_out


def test_each_row_has_its_own_seed_temperature_and_max_tokens(tiny: HFLLM) -> None:
    hot = [completion(4, temperature=1.5, seed=s, max_tokens=20) for s in (1, 2, 1)]
    short = completion(4, max_tokens=3)
    a, b, c, d = run(tiny, [*hot, short])
    assert a.text == c.text != b.text  # same seed, same sample; another seed, another
    assert d.tokens_out == 3 and d.finish_reason == "length"
    assert a.tokens_out <= 20
    again = run(tiny, [*hot, short])
    assert [x.text for x in again] == [a.text, b.text, c.text, d.text]


def test_stop_sequences_cut_the_text(tiny: HFLLM) -> None:
    samples = run(tiny, [completion(5, max_tokens=30, temperature=1.0, seed=s) for s in range(16)])
    free, seed = next((c, s) for s, c in enumerate(samples) if len(c.text.split()) >= 4)
    stop = free.text.split()[2]
    cut = run(tiny, [completion(5, max_tokens=30, temperature=1.0, seed=seed, stop=(stop,))])[0]
    assert cut.ok and stop not in cut.text and cut.finish_reason == "stop"
    assert free.text.startswith(cut.text) and cut.tokens_out < free.tokens_out


def test_context_overflow_fails_one_request_and_the_batch_goes_on(tiny: HFLLM) -> None:
    long, fine = completion(200), completion(5)
    bad, good = run(tiny, [long, fine])
    assert (
        not bad.ok and "context overflow" in (bad.error or "") and "200 tokens" in (bad.error or "")
    )
    assert good.ok and good.tokens_out > 0


def test_chat_uses_the_tokenizer_template_and_base_models_get_plain_text(
    tiny: HFLLM, tmp_path: Path
) -> None:
    chat = Request(messages=({"role": "user", "content": words(6)},), max_tokens=4, seed=1)
    assert tiny.count_tokens(chat) == 6 + 0  # no template: the contents as a plain prompt
    template = "{% for m in messages %}<s> {{ m['content'] }} </s> {% endfor %}<s>"
    templated = HFLLM(tiny_model(tmp_path, chat_template=template), device="cpu")
    assert templated.count_tokens(chat) == 6 + 3
    assert templated.chat_template and not tiny.chat_template  # what Judge(style="auto") reads
    (c,) = run(templated, [chat])
    assert c.ok and c.tokens_in == 9


def test_quantization_without_bitsandbytes_names_the_fix(tmp_path: Path) -> None:
    pytest.importorskip("tokenizers")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("bitsandbytes is installed")
    with pytest.raises(LLMError, match="pip install bitsandbytes"):
        HFLLM(tiny_model(tmp_path), quantization="8bit")


def test_bad_paths_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="neither a model directory"):
        HFLLM(tmp_path)
    with pytest.raises(LLMError, match="neither a model directory"):
        make_backend(f"hf:{tmp_path / 'missing'}")


@pytest.mark.slow
def test_real_smollm2_weights_from_the_bundled_gguf() -> None:
    pytest.importorskip("gguf", reason="transformers reads GGUF files with the gguf package")
    llm = HFLLM(device="cpu", concurrency=4)
    assert llm.model == "smollm2-135m-instruct" and llm.context_length == 8192
    reqs = [
        Request(
            messages=(
                {"role": "system", "content": "You are an expert Python programmer."},
                {"role": "user", "content": f"Write a Python function that adds {n} numbers."},
            ),
            max_tokens=24,
            temperature=0.8,
            seed=n,
        )
        for n in (2, 3, 4)
    ]
    out = run(llm, reqs)
    assert llm.batch_sizes[-1] == 3
    assert all(c.ok and c.text.strip() and 0 < c.tokens_out <= 24 for c in out)
    llama = pytest.importorskip("llama_cpp", reason="compares token counts with llama.cpp")
    del llama
    from evolm.llm import LlamaCppLLM

    embedded = LlamaCppLLM()
    for r, c in zip(reqs, out, strict=True):
        assert c.tokens_in == embedded.count_tokens(r)  # same template, same tokenizer


def test_a_peft_adapter_is_applied(tmp_path: Path, tiny: HFLLM) -> None:
    peft = pytest.importorskip("peft", reason="pip install 'evolm[train]'")
    directory = Path(tiny.model_path)
    base = transformers.AutoModelForCausalLM.from_pretrained(str(directory))
    lora = peft.get_peft_model(
        base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"])
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 2.0)  # a strong adapter: greedy text must change
    lora.save_pretrained(tmp_path / "adapter")
    adapted = HFLLM(directory, lora_path=tmp_path / "adapter", concurrency=2)
    req = completion(4)
    (plain,), (changed,) = run(tiny, [req]), run(adapted, [req])
    assert plain.ok and changed.ok and plain.text != changed.text
    with pytest.raises(LLMError, match="not a peft adapter directory"):
        HFLLM(directory, lora_path=tmp_path)
