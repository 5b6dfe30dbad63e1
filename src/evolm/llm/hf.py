"""Local Hugging Face ``transformers`` causal language models, with batched generation.

Install with ``pip install 'evolm[hf]'``. The backend loads any local causal-LM directory
(``config.json`` + weights) or a GGUF file (transformers de-quantizes llama-architecture GGUF
files, so the bundled SmolLM2 GGUF works offline, and is the default). Nothing is downloaded:
loading is ``local_files_only`` and remote code is never trusted.

**Batching.** The engine sends one request per candidate, concurrently; a
:class:`~evolm.llm.local.MicroBatcher` collects the waiting ones (up to ``concurrency``) into one
``generate`` call. Prompts are **left-padded**, with an attention mask, and every decoder model
gets a pad token: its own, else EOS, else UNK, else BOS. (OpenELM set one only for CodeGen.)

**Sampling per request.** ``generate`` samples a whole batch with one temperature, one top-p and
one random stream. Here each row is sampled with its own temperature, top-p and seed: a logits
processor scales and truncates each row's logits, then adds Gumbel noise drawn from a
generator seeded with the request's seed, and greedy decoding takes the argmax, which is an
exact sample (the Gumbel-max trick). Each row also has its own max tokens and stop sequences.
The same request with the same seed gives the same text in a batch of the same shape. In a
batch of another shape, padding can change the logits in their last bits, and with them a rare
token.

Chat requests use the tokenizer's chat template; a tokenizer without one (a base model) gets the
messages' contents as a plain prompt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evolm.llm.base import (
    Completion,
    LLMBackend,
    LLMError,
    Request,
    log_softmax_probs,
    option_completion,
)
from evolm.llm.llama_cpp import plain_chat_prompt
from evolm.llm.local import MicroBatcher, ModelWorker
from evolm.llm.models import BUNDLED_NAME, default_gguf
from evolm.llm.options import split_at_boundary

__all__ = ["HFLLM"]

_INSTALL = "pip install 'evolm[hf]'"
_STOP_TAIL_TOKENS = 24


def _locate(model_path: str | Path | None) -> tuple[Path, str | None, bool]:
    """(directory, GGUF file name or None, bundled?) for a model path."""
    if model_path is None:
        gguf = default_gguf()
        return gguf.parent, gguf.name, True
    p = Path(model_path).expanduser()
    if p.is_file() and p.name.endswith(".gguf"):
        return p.parent, p.name, False
    if p.is_dir() and (p / "config.json").is_file():
        return p, None, False
    raise LLMError(
        f"hf model path {p} is neither a model directory (with config.json) nor a .gguf file; "
        "nothing is downloaded, so name a local copy"
    )


def _pad_token(tok: Any) -> None:
    """Give a tokenizer a pad token if it has none, and pad on the left."""
    tok.padding_side = "left"
    if tok.pad_token_id is not None:
        return
    for name in ("eos_token", "unk_token", "bos_token"):
        value = getattr(tok, name, None)
        if value is not None:
            tok.pad_token = value
            return
    tok.pad_token = tok.convert_ids_to_tokens(0)


def _request_text(tokenizer: Any, request: Request) -> tuple[str, bool]:
    """The text the model sees for ``request`` and whether tokenizing it adds special tokens."""
    if request.kind == "chat" and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [dict(m) for m in request.messages], tokenize=False, add_generation_prompt=True
        )
        return str(text), False
    text = request.prompt if request.kind == "completion" else plain_chat_prompt(request.messages)
    return text, True


def encode_request(tokenizer: Any, request: Request, suffix: str = "") -> list[int]:
    """Token ids of ``request`` (its text followed by ``suffix``) as a Hugging Face tokenizer
    gives them to the model: chat requests through the tokenizer's chat template when it has
    one, otherwise plain text."""
    text, special = _request_text(tokenizer, request)
    return list(tokenizer(text + suffix, add_special_tokens=special)["input_ids"])


class HFLLM(LLMBackend):
    """A local ``transformers`` causal LM, batched across concurrent requests.

    Args:
        model_path: a model directory or a ``.gguf`` file; ``None``: the bundled SmolLM2 GGUF.
        model: the name recorded with each completion (default: from the path).
        device: a torch device (default: ``cuda`` when available, else ``cpu``).
        dtype: ``auto`` (float32 on CPU, the checkpoint's dtype on GPU), ``float32``,
            ``float16`` or ``bfloat16``.
        quantization: ``"8bit"`` or ``"4bit"`` loads the weights through bitsandbytes (it must
            be installed; it needs a CUDA GPU); ``None`` loads them as they are.
        concurrency: the largest batch (and the most requests in flight).
        prices: USD per million (input, output) tokens; default: cost 0.
        lora_path: a peft LoRA adapter directory (``evolm finetune`` writes one as
            ``DIR/adapter``), merged into the weights after loading; default: none.
        seed: seeds the seeds of requests that carry none.

    Raises:
        LLMError: transformers, torch, gguf, peft (with an adapter) or bitsandbytes is missing,
            or the model or adapter cannot be loaded.
    """

    name = "hf"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model: str | None = None,
        device: str | None = None,
        dtype: str = "auto",
        quantization: str | None = None,
        concurrency: int = 8,
        prices: tuple[float, float] | None = None,
        lora_path: str | Path | None = None,
        seed: int = 0,
    ) -> None:
        directory, gguf_file, bundled = _locate(model_path)
        if model is None:
            model = BUNDLED_NAME if bundled else (gguf_file or directory.name).removesuffix(".gguf")
        super().__init__(model, concurrency, prices=prices, seed=seed)
        if dtype not in ("auto", "float32", "float16", "bfloat16"):
            raise ValueError(f"dtype must be auto, float32, float16 or bfloat16, got {dtype!r}")
        if quantization not in (None, "8bit", "4bit"):
            raise ValueError(f"quantization must be None, '8bit' or '4bit', got {quantization!r}")
        if quantization and gguf_file:
            raise LLMError("quantization applies to model directories, not to GGUF files")
        self.model_path = directory / gguf_file if gguf_file else directory
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise LLMError(f"the hf backend needs transformers and torch: {_INSTALL}") from exc
        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        kwargs: dict[str, Any] = {"local_files_only": True}
        if gguf_file:
            kwargs["gguf_file"] = gguf_file
        bars = transformers.utils.logging.is_progress_bar_enabled()
        transformers.utils.logging.disable_progress_bar()  # no tqdm under evolm's progress bar
        try:
            tok = transformers.AutoTokenizer.from_pretrained(str(directory), **kwargs)
            load: dict[str, Any] = dict(kwargs)
            if quantization:
                load["quantization_config"] = self._bnb(transformers, quantization)
                load["device_map"] = "auto"
            if dtype != "auto":
                load["dtype"] = getattr(torch, dtype)
            elif self.device == "cpu":
                load["dtype"] = torch.float32
            else:
                load["dtype"] = "auto"
            lm: Any = transformers.AutoModelForCausalLM.from_pretrained(str(directory), **load)
        except (OSError, ValueError, ImportError, RuntimeError) as exc:
            hint = " (GGUF files also need: pip install gguf)" if gguf_file else ""
            raise LLMError(f"transformers cannot load {self.model_path}: {exc}{hint}") from exc
        finally:
            if bars:
                transformers.utils.logging.enable_progress_bar()
        self.lora_path = Path(lora_path).expanduser() if lora_path is not None else None
        if self.lora_path is not None:
            lm = self._with_adapter(lm, self.lora_path)
        if not quantization:
            lm.to(self.device)
        lm.eval()
        _pad_token(tok)
        self.tokenizer = tok
        self.lm = lm
        self._eos_ids = self._eos(tok, lm)
        self._worker = ModelWorker(f"hf-{self.model}")
        self._batcher = MicroBatcher(self._generate_batch, self._worker, max_batch=concurrency)

    @staticmethod
    def _with_adapter(lm: Any, path: Path) -> Any:
        """``lm`` with the peft LoRA adapter in ``path`` merged into its weights."""
        if not (path / "adapter_config.json").is_file():
            raise LLMError(
                f"{path} is not a peft adapter directory (no adapter_config.json); "
                "`evolm finetune RUN.db --out DIR` writes one as DIR/adapter"
            )
        try:
            import peft
        except ImportError as exc:
            raise LLMError("LoRA adapters need peft: pip install 'evolm[train]'") from exc
        try:
            return peft.PeftModel.from_pretrained(lm, str(path)).merge_and_unload()
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise LLMError(f"peft cannot apply the adapter {path}: {exc}") from exc

    @staticmethod
    def _bnb(transformers: Any, quantization: str) -> Any:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            raise LLMError(
                f"quantization = {quantization!r} needs bitsandbytes (and a CUDA GPU): "
                "pip install bitsandbytes"
            ) from exc
        if quantization == "8bit":
            return transformers.BitsAndBytesConfig(load_in_8bit=True)
        return transformers.BitsAndBytesConfig(load_in_4bit=True)

    @staticmethod
    def _eos(tok: Any, lm: Any) -> set[int]:
        ids: set[int] = set()
        for value in (lm.generation_config.eos_token_id, tok.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif value:
                ids.update(int(v) for v in value)
        return ids

    def __repr__(self) -> str:
        lora = f", lora_path={str(self.lora_path)!r}" if self.lora_path else ""
        return f"HFLLM(model={self.model!r}, model_path={str(self.model_path)!r}{lora})"

    @property
    def batch_sizes(self) -> list[int]:
        """The size of every batch generated so far."""
        return self._batcher.batch_sizes

    # -- prompt-size check -----------------------------------------------------------------
    @property
    def chat_template(self) -> bool:
        """Whether chat requests use the tokenizer's chat template (else plain text)."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def context_length(self) -> int:
        """The model's maximum positions (prompt + completion)."""
        config = self.lm.config
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return int(self.tokenizer.model_max_length)

    def count_tokens(self, request: Request) -> int:
        """Prompt tokens of ``request`` exactly as the model will see them."""
        with self._worker.lock:
            return len(self._encode(request))

    def _encode(self, request: Request) -> list[int]:
        return encode_request(self.tokenizer, request)

    # -- generation ------------------------------------------------------------------------
    async def _generate_one(self, request: Request) -> Completion:
        if request.options:
            return await self._worker.run(lambda: self._options_sync(request))
        if request.seed is None:
            request = _with_seed(request, self.request_seed(request))
        return await self._batcher.submit(request)

    def _options_sync(self, request: Request) -> Completion:
        """The probability of each option as the next tokens after the prompt, from the
        model's logits (see :mod:`evolm.llm.options` for the token boundary)."""
        torch = self._torch
        tok: Any = self.tokenizer
        t0 = time.perf_counter()
        prompt = self._encode(request)
        full = [encode_request(tok, request, o) for o in request.options]
        k, rest = split_at_boundary(prompt, full)
        logps: dict[str, float] = {}
        with torch.no_grad():
            for option, cont in zip(request.options, rest, strict=True):
                ids = torch.tensor([prompt[:k] + cont], dtype=torch.long, device=self.device)
                logits = self.lm(input_ids=ids).logits[0].float()
                logprobs = torch.log_softmax(logits[k - 1 : -1], dim=-1)
                picked = logprobs[torch.arange(len(cont)), torch.tensor(cont, device=self.device)]
                logps[option] = float(picked.sum())
        tokens_in = k + sum(len(c) for c in rest)
        return option_completion(
            self.model,
            log_softmax_probs(logps),
            tokens_in=tokens_in,
            latency=time.perf_counter() - t0,
            cost=self.cost(tokens_in, 0),
            extras={"option_logprobs": logps},
        )

    def _generate_batch(
        self, requests: Sequence[Request], cancels: Sequence[threading.Event]
    ) -> list[Completion]:
        t0 = time.perf_counter()
        encoded = [self._encode(r) for r in requests]
        context = self.context_length
        live = [i for i, ids in enumerate(encoded) if len(ids) < context]
        sampled = iter(
            self._sample(
                [requests[i] for i in live],
                [encoded[i] for i in live],
                [cancels[i] for i in live],
                context,
                t0,
            )
            if live
            else []
        )
        return [
            next(sampled)
            if i in live
            else Completion(
                text="",
                model=self.model,
                error=f"context overflow: the prompt needs {len(ids)} tokens but the context of "
                f"{self.model} is {context}",
            )
            for i, ids in enumerate(encoded)
        ]

    def _sample(
        self,
        requests: list[Request],
        encoded: list[list[int]],
        cancels: list[threading.Event],
        context: int,
        t0: float,
    ) -> list[Completion]:
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        torch = self._torch
        tok: Any = self.tokenizer
        width = max(len(ids) for ids in encoded)
        pad = int(tok.pad_token_id)
        input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, ids in enumerate(encoded):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            mask[row, width - len(ids) :] = 1
        limits = [
            min(r.max_tokens, context - len(ids)) for r, ids in zip(requests, encoded, strict=True)
        ]
        sampler = _RowSampler(requests, self.device, torch)
        stopper = _RowStopper(requests, limits, width, cancels, self._eos_ids, tok, torch)
        config = GenerationConfig(
            max_new_tokens=max(limits),
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=sorted(self._eos_ids) or None,
        )
        with torch.inference_mode():
            generated = self.lm.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                generation_config=config,
                logits_processor=LogitsProcessorList([sampler]),
                stopping_criteria=StoppingCriteriaList([stopper]),
            )
        elapsed = time.perf_counter() - t0
        out = []
        for row, request in enumerate(requests):
            n_out = stopper.lengths[row]
            new = generated[row, width : width + n_out].tolist()
            finish = stopper.reasons[row]
            if new and new[-1] in self._eos_ids and finish == "stop":
                new = new[:-1]
            text = tok.decode(new, skip_special_tokens=True)
            for s in request.stop:
                at = text.find(s) if s else -1
                if at >= 0:
                    text, finish = text[:at], "stop"
            tokens_in = len(encoded[row])
            out.append(
                Completion(
                    text=text,
                    model=self.model,
                    tokens_in=tokens_in,
                    tokens_out=n_out,
                    latency=elapsed,
                    finish_reason=finish,
                    cost=self.cost(tokens_in, n_out),
                    extras={"seed": request.seed, "batch_size": len(requests)},
                )
            )
        return out


def _with_seed(request: Request, seed: int) -> Request:
    from dataclasses import replace

    return replace(request, seed=seed)


class _RowSampler:
    """Samples each row with its own temperature, top-p and seeded generator (Gumbel-max)."""

    def __init__(self, requests: Sequence[Request], device: str, torch: Any) -> None:
        self.torch = torch
        self.temperature = [r.temperature for r in requests]
        self.top_p = [r.top_p for r in requests]
        self.generators = [
            torch.Generator(device=device).manual_seed(int(r.seed or 0)) for r in requests
        ]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = self.torch
        out = scores.float().clone()
        for row, (t, p, gen) in enumerate(
            zip(self.temperature, self.top_p, self.generators, strict=True)
        ):
            if t <= 0:
                continue  # greedy: the argmax of the raw logits
            logits = out[row] / t
            if p < 1.0:
                sorted_logits, order = torch.sort(logits, descending=True)
                cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
                drop = cum - torch.softmax(sorted_logits, dim=-1) >= p
                logits[order[drop]] = -float("inf")
            u = torch.rand(logits.shape, generator=gen, device=logits.device)
            u = u.clamp_(min=1e-20, max=1.0 - 1e-7)
            out[row] = logits - torch.log(-torch.log(u))
        return out


class _RowStopper:
    """Ends each row at EOS, its own max tokens, its own stop strings, or when cancelled."""

    def __init__(
        self,
        requests: Sequence[Request],
        limits: Sequence[int],
        width: int,
        cancels: Sequence[threading.Event],
        eos: set[int],
        tok: Any,
        torch: Any,
    ) -> None:
        self.stops = [tuple(s for s in r.stop if s) for r in requests]
        self.limits = list(limits)
        self.width = width
        self.cancels = cancels
        self.eos = eos
        self.tok = tok
        self.torch = torch
        self.done = [False] * len(requests)
        self.lengths = [0] * len(requests)
        self.reasons = ["length"] * len(requests)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        n = input_ids.shape[1] - self.width
        for row in range(len(self.done)):
            if self.done[row]:
                continue
            self.lengths[row] = n
            last = int(input_ids[row, -1])
            if last in self.eos:
                self.done[row], self.reasons[row] = True, "stop"
            elif self.cancels[row].is_set():
                self.done[row], self.reasons[row] = True, "cancelled"
            elif self.stops[row] and self._hit(input_ids[row, -min(n, _STOP_TAIL_TOKENS) :], row):
                self.done[row], self.reasons[row] = True, "stop"
            elif n >= self.limits[row]:
                self.done[row] = True
        return self.torch.tensor(self.done, dtype=self.torch.bool, device=input_ids.device)

    def _hit(self, tail: Any, row: int) -> bool:
        text = self.tok.decode(tail.tolist(), skip_special_tokens=True)
        return any(s in text for s in self.stops[row])
