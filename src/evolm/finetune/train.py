"""One LoRA round: fine-tune the mutation model on a dataset of accepted mutations.

The base model is the Hugging Face form of the GGUF the embedded backend runs (by default the
bundled SmolLM2-135M-Instruct; transformers de-quantizes a llama GGUF offline) or any local model
directory. Nothing is downloaded. The adapter is trained with ``peft`` (LoRA on the attention and
MLP projections) in a small loop of our own, then written twice: as a peft adapter directory and
as a GGUF adapter llama.cpp loads next to the base GGUF (:mod:`evolm.finetune.export`).

**Tokens as llama.cpp sees them.** A completion-mode prompt is tokenized as it is, special
tokens parsed, with BOS in front only if the model asks for one (a GGUF's
``tokenizer.ggml.add_bos_token``, else the tokenizer's own habit), as
:class:`~evolm.llm.llama_cpp.LlamaCppLLM` does. Chat prompts go through the tokenizer's chat
template with the assistant turn opened (or, without a template, become the plain prompt the
backends build). The completion is tokenized on its own and followed by the end-of-sequence
token (unless the example says otherwise, :attr:`~evolm.finetune.dataset.Example.eos`), so the
model also learns to stop where no stop sequence catches it. The loss is the mean
negative log-likelihood of the completion tokens only (prompt tokens are labelled -100).

**The boundary token** (``heal``, default on). The embedded backend heals completion prompts: it
takes back the prompt's last token and lets the model write it (or a longer token that starts
with it). So the distribution that writes the answer's first token is the one *before* the
prompt's last token, which a loss on the completion alone never trains. An adapter trained so
learnt to continue after a line's indentation, but under healing wrote a lone newline where the
indentation token belonged: 18 of 32 Sodarace line edits came back empty. With ``heal``, the
prompt's last token is labelled too, as the first token of the completion. An
example longer than ``max_len`` tokens loses the start of its prompt (counted as ``truncated``);
one whose completion alone does not fit is dropped (``dropped``).

**The loop.** AdamW; the learning rate decays from ``lr`` to 0 over the run (cosine or linear,
or stays constant); sequences are batched with left padding (so every completion ends at the
last position and only the logits of completion positions are computed), gradients are
accumulated over ``grad_accum`` batches per step and clipped to norm 1. A run lasts ``epochs``
passes over the training set, or ``max_steps`` optimizer steps if given (the data is then
repeated as needed). Everything random is seeded by ``seed`` (torch's generator, which also
draws the initial LoRA matrices). Validation loss (the same mean completion NLL) is measured
before and after training.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evolm.finetune.dataset import Example, SFTDataset
from evolm.finetune.loop import sha256_of

__all__ = [
    "DEFAULT_TARGETS",
    "BaseModel",
    "Encoded",
    "TrainConfig",
    "TrainError",
    "TrainMetrics",
    "TrainResult",
    "edited_spans",
    "encode_example",
    "load_base",
    "train_adapter",
    "train_lora",
]

INSTALL = "pip install 'evolm[train]'"
DEFAULT_TARGETS: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
_SCHEDULES = ("cosine", "linear", "constant")
_DEVICES = ("auto", "cpu", "cuda")

#: ``on_progress(step, total_steps, loss, tokens_per_s)``, called after each optimizer step.
ProgressFn = Callable[[int, int, float, float], None]


class TrainError(RuntimeError):
    """Training cannot start or run: a missing package, no examples, a bad base model."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a LoRA round.

    Attributes:
        rank: LoRA rank ``r``.
        alpha: LoRA alpha; updates are scaled by ``alpha / rank``.
        dropout: dropout on the LoRA input.
        target_modules: names of the linear modules to adapt.
        lr: peak learning rate of AdamW.
        schedule: ``cosine``, ``linear`` (decay to 0) or ``constant``.
        epochs: passes over the training set (ignored when ``max_steps`` is set).
        max_steps: optimizer steps to run, if given.
        batch_size: examples per forward pass.
        grad_accum: forward passes per optimizer step.
        max_len: most tokens per example (prompt + completion).
        edit_weight: the training loss weight of completion tokens that write new code: lines
            of a SEARCH/REPLACE block's REPLACE part that its SEARCH part does not hold
            (:func:`edited_spans`); every other completion token weighs 1. Above 1 it counters
            what copying-heavy edits teach (a REPLACE part that repeats its SEARCH part, an edit
            that changes nothing). Validation loss stays unweighted.
        weight_decay: AdamW weight decay.
        heal: for completion-mode prompts (text, not chat messages), the prompt's last token
            is trained as the completion's first (see the module docstring): the position
            token healing asks the model to write.
        seed: seeds torch (LoRA initialisation, data order, dropout).
        device: ``cpu``, ``cuda``, or ``auto`` (CUDA when available, else CPU).
        threads: CPU threads for torch (default: every core this process may use).
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    lr: float = 2e-4
    schedule: str = "cosine"
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 4
    grad_accum: int = 1
    max_len: int = 1024
    edit_weight: float = 1.0
    weight_decay: float = 0.0
    heal: bool = True
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None

    def __post_init__(self) -> None:
        ints = {
            "rank": self.rank,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
        }
        for name, value in ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.max_steps is not None and (
            not isinstance(self.max_steps, int) or self.max_steps < 1
        ):
            raise ValueError(f"max_steps must be an int >= 1 or None, got {self.max_steps!r}")
        if not isinstance(self.max_len, int) or self.max_len < 2:
            raise ValueError(f"max_len must be an int >= 2, got {self.max_len!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"alpha must be > 0, got {self.alpha!r}")
        if not (0 <= self.dropout < 1):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not (math.isfinite(self.edit_weight) and self.edit_weight > 0):
            raise ValueError(f"edit_weight must be > 0 (1.0 is off), got {self.edit_weight!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.schedule not in _SCHEDULES:
            raise ValueError(
                f"schedule must be one of {', '.join(_SCHEDULES)}, got {self.schedule!r}"
            )
        if self.device not in _DEVICES:
            raise ValueError(f"device must be one of {', '.join(_DEVICES)}, got {self.device!r}")
        if isinstance(self.target_modules, str) or not self.target_modules:
            raise ValueError("target_modules must be a non-empty list of module names")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {self.threads!r}")


@dataclass
class TrainMetrics:
    """What a round measured. Losses are mean negative log-likelihoods (nats) per completion
    token; ``train_loss`` is the mean of the last (at most) 10 steps; ``tokens`` counts every
    token trained on (prompts included, padding not); ``tokens_per_s`` is ``tokens / seconds``
    of the training loop (validation excluded)."""

    val_loss_before: float | None = None
    val_loss_after: float | None = None
    train_loss: float | None = None
    first_loss: float | None = None
    steps: int = 0
    tokens: int = 0
    completion_tokens: int = 0
    tokens_per_s: float = 0.0
    seconds: float = 0.0
    train_examples: int = 0
    val_examples: int = 0
    truncated: int = 0
    dropped: int = 0
    device: str = "cpu"
    losses: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Encoded:
    """One tokenized example: the prompt's ids followed by the completion's."""

    input_ids: tuple[int, ...]
    n_prompt: int
    #: per completion token, True where it writes new code (:func:`edited_spans`); empty: none
    edited: tuple[bool, ...] = ()

    @property
    def n_completion(self) -> int:
        return len(self.input_ids) - self.n_prompt


@dataclass
class BaseModel:
    """A loaded base model: the transformers model and tokenizer, and where they came from."""

    model: Any
    tokenizer: Any
    path: Path
    gguf: Path | None
    add_bos: bool


@dataclass
class TrainResult:
    """The files of a round (``gguf`` is None when the base model cannot be exported)."""

    out_dir: Path
    adapter_dir: Path
    gguf: Path | None
    card_path: Path
    metrics: TrainMetrics
    card: dict[str, Any]


def _require() -> tuple[Any, Any, Any]:
    try:
        import peft
        import torch
        import transformers
    except ImportError as exc:
        raise TrainError(
            f"fine-tuning needs torch, transformers and peft ({exc.name} is missing): {INSTALL}"
        ) from exc
    return torch, transformers, peft


# -- the base model ---------------------------------------------------------------------------
def _resolve(base: str | Path | None) -> tuple[Path, Path | None]:
    """(directory to load from, GGUF file or None)."""
    if base is None:
        from evolm.llm.base import LLMError
        from evolm.llm.models import default_gguf

        try:
            gguf = default_gguf()
        except LLMError as exc:
            raise TrainError(str(exc)) from exc
        return gguf.parent, gguf
    p = Path(base).expanduser()
    if p.is_file() and p.name.endswith(".gguf"):
        return p.parent, p
    if p.is_dir() and (p / "config.json").is_file():
        return p, None
    raise TrainError(
        f"base model {p} is neither a .gguf file nor a model directory with config.json; "
        "nothing is downloaded, so name a local copy"
    )


def _gguf_add_bos(path: Path) -> bool:
    from evolm.llm.models import read_gguf_metadata

    value = read_gguf_metadata(path).get("tokenizer.ggml.add_bos_token", True)
    return value is True or value == "true"


def load_base(base: str | Path | None = None) -> BaseModel:
    """Load a base model for training, in float32, offline.

    Args:
        base: a ``.gguf`` file (llama architecture; transformers de-quantizes it), a model
            directory, or None for the bundled SmolLM2-135M-Instruct GGUF.

    Raises:
        TrainError: torch, transformers, peft or gguf is missing, or the model cannot be loaded.
    """
    torch, transformers, _ = _require()
    directory, gguf = _resolve(base)
    kwargs: dict[str, Any] = {"local_files_only": True}
    if gguf is not None:
        kwargs["gguf_file"] = gguf.name
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        # transformers' GGUF de-quantization draws a tqdm bar of its own, on stderr
        with contextlib.redirect_stderr(io.StringIO()):
            tok = transformers.AutoTokenizer.from_pretrained(str(directory), **kwargs)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                str(directory), dtype=torch.float32, **kwargs
            )
    except (OSError, ValueError, ImportError, RuntimeError) as exc:
        hint = f" (GGUF files also need the gguf package: {INSTALL})" if gguf else ""
        raise TrainError(f"transformers cannot load {gguf or directory}: {exc}{hint}") from exc
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    if gguf is not None:
        add_bos = _gguf_add_bos(gguf)
    else:
        probe = tok("a")["input_ids"]
        add_bos = bool(probe) and tok.bos_token_id is not None and probe[0] == tok.bos_token_id
    return BaseModel(model, tok, gguf or directory, gguf, add_bos)


# -- tokenization -----------------------------------------------------------------------------
def _prompt_ids(tokenizer: Any, prompt: str | list[dict[str, str]], add_bos: bool) -> list[int]:
    if isinstance(prompt, str):
        text = prompt
    elif getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [dict(m) for m in prompt], tokenize=False, add_generation_prompt=True
        )
    else:
        from evolm.llm.llama_cpp import plain_chat_prompt

        text = plain_chat_prompt(prompt)
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    bos = tokenizer.bos_token_id
    if add_bos and bos is not None and (not ids or ids[0] != bos):
        ids.insert(0, bos)
    return ids


_SR_SEARCH, _SR_SPLIT, _SR_REPLACE = "<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE"


def edited_spans(completion: str) -> list[tuple[int, int]]:
    """Character spans of ``completion`` that write new code: each line of a SEARCH/REPLACE
    block's REPLACE part that is not among the lines of its SEARCH part (the completion may
    start inside the first block's SEARCH part, as the operator's prompt opens it). Other
    formats have no spans."""
    spans: list[tuple[int, int]] = []
    state, pos = "search", 0
    search: set[str] = set()
    for line in completion.splitlines(keepends=True):
        text = line.rstrip("\n")
        if text.startswith(_SR_SEARCH):
            state, search = "search", set()
        elif text.startswith(_SR_SPLIT) and state == "search":
            state = "replace"
        elif text.startswith(_SR_REPLACE):
            state = "out"
        elif state == "search":
            search.add(text.rstrip())
        elif state == "replace" and text.strip() and text.rstrip() not in search:
            spans.append((pos, pos + len(line)))
        pos += len(line)
    return spans


def _edited_mask(tokenizer: Any, completion: str, n: int) -> tuple[bool, ...]:
    """Per token of ``completion`` (``n`` tokens), whether it overlaps an edited span; empty
    when there are none or the tokenizer gives no character offsets."""
    spans = edited_spans(completion)
    if not spans:
        return ()
    try:
        offsets = tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)[
            "offset_mapping"
        ]
    except (NotImplementedError, KeyError, TypeError, ValueError):
        return ()
    if len(offsets) != n:
        return ()
    return tuple(any(a < e and s < b for s, e in spans) for a, b in offsets)


def encode_example(
    example: Example, tokenizer: Any, *, add_bos: bool, max_len: int, heal: bool = False
) -> tuple[Encoded | None, bool]:
    """Tokenize one example as the module docstring says (``heal``: a text prompt's last
    token becomes the completion's first).

    Returns:
        ``(encoded, truncated)``; ``encoded`` is None when the prompt is empty or the
        completion alone (with its end-of-sequence token) leaves no room for a prompt token
        within ``max_len``.
    """
    prompt = _prompt_ids(tokenizer, example.prompt, add_bos)
    completion = list(tokenizer(example.completion, add_special_tokens=False)["input_ids"])
    edited = _edited_mask(tokenizer, example.completion, len(completion))
    if heal and isinstance(example.prompt, str) and len(prompt) > 1:
        completion.insert(0, prompt.pop())
        edited = (False, *edited) if edited else ()
    if tokenizer.eos_token_id is not None and example.eos:
        completion.append(int(tokenizer.eos_token_id))
        edited = (*edited, False) if edited else ()
    if not prompt or len(completion) >= max_len:
        return None, False
    truncated = len(prompt) + len(completion) > max_len
    if truncated:
        prompt = prompt[len(prompt) + len(completion) - max_len :]
    return Encoded(tuple(prompt + completion), len(prompt), edited), truncated


def _encode_all(
    examples: Sequence[Example], tokenizer: Any, add_bos: bool, max_len: int, heal: bool
) -> tuple[list[Encoded], int, int]:
    out: list[Encoded] = []
    truncated = dropped = 0
    for ex in examples:
        enc, cut = encode_example(ex, tokenizer, add_bos=add_bos, max_len=max_len, heal=heal)
        if enc is None:
            dropped += 1
            continue
        truncated += cut
        out.append(enc)
    return out, truncated, dropped


# -- the loop ---------------------------------------------------------------------------------
def _batch(
    torch: Any, items: Sequence[Encoded], pad: int, device: Any, edit_weight: float = 1.0
) -> dict[str, Any]:
    """Left-padded ids, mask, positions and completion labels of the last ``keep`` positions,
    and each label's loss weight (``edit_weight`` on edited tokens, 1 on the others)."""
    width = max(len(e.input_ids) for e in items)
    keep = max(e.n_completion for e in items) + 1
    ids = torch.full((len(items), width), pad, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    labels = torch.full((len(items), keep - 1), -100, dtype=torch.long)
    weights = torch.zeros((len(items), keep - 1), dtype=torch.float32)
    for row, e in enumerate(items):
        n = len(e.input_ids)
        ids[row, width - n :] = torch.tensor(e.input_ids, dtype=torch.long)
        mask[row, width - n :] = 1
        c = e.n_completion
        labels[row, keep - 1 - c :] = torch.tensor(e.input_ids[e.n_prompt :], dtype=torch.long)
        weights[row, keep - 1 - c :] = 1.0
        if e.edited and edit_weight != 1.0:
            edited = torch.tensor(e.edited, dtype=torch.bool)
            weights[row, keep - 1 - c :][edited] = edit_weight
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "position_ids": positions.to(device),
        "labels": labels.to(device),
        "weights": weights.to(device),
        "keep": keep,
        "tokens": int(mask.sum()),
    }


def _nll(
    torch: Any, model: Any, batch: dict[str, Any], weighted: bool = False
) -> tuple[Any, float]:
    """Summed completion NLL of a batch and the number of completion tokens; ``weighted``: the
    NLL summed with each token's weight, and the sum of the weights."""
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=batch["keep"],
        use_cache=False,
    )
    logits = out.logits[:, :-1, :].float()
    labels = batch["labels"]
    if weighted:
        per_token = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            ignore_index=-100,
            reduction="none",
        )
        w = batch["weights"].reshape(-1)
        return (per_token * w).sum(), float(w.sum())
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return loss, int((labels != -100).sum())


def _eval_loss(
    torch: Any, model: Any, items: Sequence[Encoded], size: int, pad: int, device: Any
) -> float | None:
    if not items:
        return None
    model.eval()
    total, count = 0.0, 0.0
    with torch.no_grad():
        for start in range(0, len(items), size):
            loss, n = _nll(torch, model, _batch(torch, items[start : start + size], pad, device))
            total += float(loss)
            count += n
    return total / count if count else None


def _device(torch: Any, name: str) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("device 'cuda' was asked for but torch sees no CUDA GPU; use cpu or auto")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _schedule(name: str, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        frac = min(step / total, 1.0)
        if name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * frac))
        if name == "linear":
            return 1.0 - frac
        return 1.0

    return factor


def train_adapter(
    model: Any,
    tokenizer: Any,
    train: Sequence[Example],
    val: Sequence[Example] = (),
    config: TrainConfig | None = None,
    *,
    add_bos: bool = False,
    on_progress: ProgressFn | None = None,
) -> tuple[Any, TrainMetrics]:
    """Wrap ``model`` with a LoRA adapter and train it on ``train`` (module docstring).

    Args:
        model: a transformers causal LM (float32); it is modified in place by peft.
        tokenizer: its tokenizer.
        train, val: the examples.
        config: hyper-parameters (default :class:`TrainConfig`).
        add_bos: put the BOS token before each prompt (what llama.cpp does for the model).
        on_progress: called after each optimizer step.

    Returns:
        ``(peft_model, metrics)``.

    Raises:
        TrainError: peft is missing, no example fits ``max_len``, a target module does not
            exist in the model, or CUDA was asked for and is not there.
    """
    torch, _, peft = _require()
    cfg = config or TrainConfig()
    from evolm.llm.local import default_threads

    device = _device(torch, cfg.device)
    metrics = TrainMetrics(device=device)
    train_items, metrics.truncated, metrics.dropped = _encode_all(
        train, tokenizer, add_bos, cfg.max_len, cfg.heal
    )
    val_items, cut, dropped = _encode_all(val, tokenizer, add_bos, cfg.max_len, cfg.heal)
    metrics.truncated += cut
    metrics.dropped += dropped
    metrics.train_examples, metrics.val_examples = len(train_items), len(val_items)
    if not train_items:
        raise TrainError(
            f"no training example fits max_len={cfg.max_len} tokens "
            f"({len(train)} given, {metrics.dropped} too long); raise max_len"
        )
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(cfg.threads or default_threads())
    try:
        torch.manual_seed(cfg.seed)
        lora = peft.LoraConfig(
            r=cfg.rank,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            target_modules=list(cfg.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )
        try:
            peft_model = peft.get_peft_model(model, lora)
        except ValueError as exc:
            raise TrainError(f"cannot add LoRA to the model: {exc}") from exc
        peft_model.to(device)
        metrics.val_loss_before = _eval_loss(
            torch, peft_model, val_items, cfg.batch_size, pad, device
        )
        _loop(torch, peft_model, train_items, cfg, pad, device, metrics, on_progress)
        metrics.val_loss_after = _eval_loss(
            torch, peft_model, val_items, cfg.batch_size, pad, device
        )
    finally:
        torch.set_num_threads(threads)
    peft_model.eval()
    return peft_model, metrics


def _loop(
    torch: Any,
    model: Any,
    items: list[Encoded],
    cfg: TrainConfig,
    pad: int,
    device: str,
    metrics: TrainMetrics,
    on_progress: ProgressFn | None,
) -> None:
    per_step = cfg.batch_size * cfg.grad_accum
    steps_per_epoch = math.ceil(len(items) / per_step)
    total = cfg.max_steps or cfg.epochs * steps_per_epoch
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg.schedule, total))
    generator = torch.Generator().manual_seed(cfg.seed)
    model.train()
    t0 = time.perf_counter()
    step = 0
    while step < total:
        order = torch.randperm(len(items), generator=generator).tolist()
        for start in range(0, len(order), per_step):
            group = [items[i] for i in order[start : start + per_step]]
            batches = [
                _batch(torch, group[b : b + cfg.batch_size], pad, device, cfg.edit_weight)
                for b in range(0, len(group), cfg.batch_size)
            ]
            n_labels = sum(int((b["labels"] != -100).sum()) for b in batches)
            weight = sum(float(b["weights"].sum()) for b in batches)
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for batch in batches:
                loss, _ = _nll(torch, model, batch, weighted=True)
                (loss / weight).backward()
                step_loss += float(loss.detach())
                metrics.tokens += batch["tokens"]
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            metrics.completion_tokens += n_labels
            metrics.losses.append(step_loss / weight)
            metrics.seconds = time.perf_counter() - t0
            metrics.tokens_per_s = metrics.tokens / metrics.seconds if metrics.seconds else 0.0
            if on_progress is not None:
                on_progress(step, total, metrics.losses[-1], metrics.tokens_per_s)
            if step >= total:
                break
    metrics.steps = step
    metrics.first_loss = metrics.losses[0]
    tail = metrics.losses[-10:]
    metrics.train_loss = sum(tail) / len(tail)


# -- a whole round ----------------------------------------------------------------------------
def train_lora(
    dataset: SFTDataset,
    out_dir: str | Path,
    *,
    base: str | Path | None = None,
    config: TrainConfig | None = None,
    on_progress: ProgressFn | None = None,
) -> TrainResult:
    """Train a LoRA adapter on ``dataset`` and write it to ``out_dir``.

    Writes ``train.jsonl`` and ``val.jsonl`` (the data), ``adapter/`` (peft's
    ``save_pretrained``), ``adapter.gguf`` (for llama.cpp; only for llama-architecture bases)
    and ``card.json`` (sources with sha256, dataset counts, hyper-parameters, base model with
    sha256, metrics, evolm version, format).

    Args:
        dataset: from :func:`~evolm.finetune.dataset.build_dataset`.
        out_dir: the output directory (created).
        base: a ``.gguf`` file, a model directory, or None for the bundled SmolLM2 GGUF.
        config: hyper-parameters.
        on_progress: called after each optimizer step.

    Raises:
        TrainError: the dataset has no training example, a package is missing, or the base
            model cannot be loaded or adapted.
    """
    if not dataset.train:
        raise TrainError(
            f"the dataset has no training example ({dataset.counts.rows} programs seen, "
            f"{dataset.counts.qualifying} qualifying)"
        )
    cfg = config or TrainConfig()
    loaded = load_base(base)
    peft_model, metrics = train_adapter(
        loaded.model,
        loaded.tokenizer,
        dataset.train,
        dataset.val,
        cfg,
        add_bos=loaded.add_bos,
        on_progress=on_progress,
    )
    from evolm import __version__
    from evolm.finetune.export import ExportError, export_gguf_adapter

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset.write(out)
    adapter_dir = out / "adapter"
    peft_model.save_pretrained(str(adapter_dir), save_embedding_layers=False)
    gguf_path: Path | None = out / "adapter.gguf"
    gguf_error = None
    try:
        export_gguf_adapter(peft_model, out / "adapter.gguf", base_gguf=loaded.gguf)
    except ExportError as exc:
        gguf_path, gguf_error = None, str(exc)
    hyper = asdict(cfg)
    hyper["target_modules"] = list(cfg.target_modules)
    card: dict[str, Any] = {
        "evolm_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "format": dataset.format,
        "accept": dataset.accept,
        "split_by": dataset.split_by,
        "sources": [{"path": str(p.resolve()), "sha256": sha256_of(p)} for p in dataset.sources],
        "dataset": dataset.counts.to_dict(),
        "hyperparameters": hyper,
        "base_model": {
            "path": str(loaded.path.resolve()),
            "sha256": sha256_of(loaded.path),
            "add_bos": loaded.add_bos,
        },
        "metrics": {k: v for k, v in metrics.to_dict().items() if k != "losses"},
        "losses": metrics.losses,
        "files": {
            "train": "train.jsonl",
            "val": "val.jsonl",
            "adapter": "adapter",
            "gguf": gguf_path.name if gguf_path else None,
        },
    }
    if gguf_error:
        card["gguf_error"] = gguf_error
    card_path = out / "card.json"
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return TrainResult(out, adapter_dir, gguf_path, card_path, metrics, card)
