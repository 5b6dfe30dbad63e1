"""ELM Stage 3: reinforcement learning of the Stage-2 model, conditioned on the terrain
(Lehman et al. 2022, section 6).

ELM's Stage 3 trains the Stage-2 model with PPO to write, for each terrain, a walker that does
well on it, with a KL penalty that keeps it close to the Stage-2 model. trl 1.16 has no PPO
any more; it has GRPO and RLOO, both policy-gradient methods with a KL term. We use
:class:`trl.GRPOTrainer`: for each prompt it samples a group of ``generations`` completions and
takes each completion's reward minus its group's mean (divided by the group's standard
deviation) as its advantage, which needs no value network (on 2 CPU cores, a value model the
size of the policy would double the cost).

**Conditioning.** One prompt per terrain: the Stage-2 prompt (:func:`~evolm.finetune.distill.
stage_prompt`) with the line ``# Terrain: NAME: DESCRIPTION`` (the terrain's own description,
e.g. "level ground with a tall wall just to the left of the robot, so it must move right")
inserted after its first line, so the prompt still ends with the line the Stage-2 model learnt
to answer with a program. The
dataset row also carries the terrain's name, which trl hands to the reward function with the
completions.

**Reward.** The completion is cut at the end marker
(:func:`~evolm.finetune.sampling.extract_program`) and the program is evaluated **in the
sandbox** (:class:`~evolm.finetune.sampling.Scorer`, one pool per terrain, never in the training
process) on the prompt's terrain: the reward is the walker's fitness there (distance in units,
in the terrain's direction), and ``invalid_reward`` (-1 by default, below any walker's 0) for a
program that is not a valid walker. A batch's programs are evaluated concurrently. Tests and
other domains can pass ``reward``: ``reward(codes, terrains) -> rewards``.

**KL penalty.** ``beta`` (> 0, required) is trl's KL coefficient: the loss adds
``beta * KL(policy || reference)`` per token (trl's k3 estimator). The policy is the Stage-2
LoRA adapter, trained further; trl keeps a frozen copy of it as the reference adapter
(``ref``), so the KL is to the Stage-2 model exactly. trl logs the KL as ``kl`` every step;
:func:`train_rl` records it with the reward.

**Recorded and resumable.** ``out_dir`` holds ``rl.json`` (the hyper-parameters, the Stage-2
directory, the base model, the terrains and prompts; at the end the summary), ``prompts.jsonl``
(the dataset), ``metrics.jsonl`` (one line per step: ``step``, ``reward``, ``reward_std``,
``kl``, ``loss``, ``valid_share``, ``terrain_rewards`` (the mean reward on each terrain
prompted at that step), ``learning_rate`` ...), and ``checkpoints/checkpoint-N/``
every ``save_steps`` steps (trl's adapter, optimizer, scheduler and random states, plus
``evolm-rl.json`` with the step, the hyper-parameters and the metrics so far). ``resume=True``
reads ``rl.json``, drops metric lines past the last checkpoint and continues from it. The
finished model is ``adapter/`` (peft; ``--llm hf`` with ``lora``) and ``adapter.gguf`` (llama.cpp;
``--llm llama_cpp --lora``), both on the Stage-2 round's base model.

**GPU.** With ``device = "cuda"`` and ``use_vllm = True``, trl generates with vLLM in the same
process (``vllm_mode = "colocate"``), which is the only way to sample many long programs per
step fast; on CPU, generation is transformers' ``generate``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evolm.finetune.distill import read_stage2, source_from_record, stage_prompt
from evolm.finetune.sampling import Scorer, extract_program

__all__ = [
    "RL_FILE",
    "RLConfig",
    "RLError",
    "Reward",
    "sandbox_reward",
    "terrain_prompts",
    "train_rl",
]

RL_FILE = "rl.json"
ALL_TERRAINS: tuple[str, ...] = ("flat", "left-wall", "right-wall", "bumpy", "tunnel")

#: ``reward(codes, terrains) -> rewards``: one float per program.
Reward = Callable[[Sequence[str], Sequence[str]], list[float]]


class RLError(ValueError):
    """Stage 3 cannot start: bad settings, a missing Stage-2 model, a finished or missing run."""


@dataclass(frozen=True)
class RLConfig:
    """Hyper-parameters of a Stage-3 run. The defaults are the laptop-scale recipe measured in
    docs/benchmarks.md (bundled SmolLM2, two CPU cores: about 36 minutes, the reward rising).

    Attributes:
        terrains: the terrains to condition on (one prompt each).
        steps: optimizer steps.
        generations: completions per prompt (GRPO's group, at least 2).
        prompts_per_step: prompts (terrains) per step.
        beta: the KL coefficient to the Stage-2 model (> 0).
        lr: learning rate of the LoRA adapter (constant).
        max_completion_length: most tokens per program.
        temperature: sampling temperature.
        invalid_reward: the reward of a program that is not a valid walker.
        save_steps: a checkpoint every this many steps (and at the end).
        seed: seeds trl (prompt order, sampling, dropout).
        device: ``cpu``, ``cuda`` or ``auto``.
        use_vllm: generate with vLLM (colocated; needs a CUDA GPU and ``pip install vllm``).
        workers: sandbox workers per terrain.
        extra: more :class:`trl.GRPOConfig` fields, passed as they are (``loss_type``,
            ``vllm_gpu_memory_utilization`` ...); for library users, not the command line.
    """

    terrains: tuple[str, ...] = ALL_TERRAINS
    steps: int = 24
    generations: int = 8
    prompts_per_step: int = 1
    beta: float = 0.04
    lr: float = 1e-4
    max_completion_length: int = 384
    temperature: float = 1.0
    invalid_reward: float = -1.0
    save_steps: int = 4
    seed: int = 0
    device: str = "cpu"
    use_vllm: bool = False
    workers: int = 2
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from evolm.domains.sodarace.terrains import make_terrain

        for name in ("steps", "prompts_per_step", "max_completion_length", "save_steps", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RLError(f"{name} must be an int >= 1, got {value!r}")
        if isinstance(self.generations, bool) or not isinstance(self.generations, int):
            raise RLError(f"generations must be an int >= 2, got {self.generations!r}")
        if self.generations < 2:
            raise RLError(
                f"generations must be >= 2 (GRPO compares completions of one prompt), got "
                f"{self.generations}"
            )
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise RLError(
                f"beta (the KL coefficient to the Stage-2 model) must be > 0, got {self.beta!r}; "
                "ELM's Stage 3 keeps the policy near the Stage-2 model"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise RLError(f"lr must be > 0, got {self.lr!r}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise RLError(f"temperature must be > 0, got {self.temperature!r}")
        if not math.isfinite(self.invalid_reward):
            raise RLError(f"invalid_reward must be a finite number, got {self.invalid_reward!r}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise RLError(f"device must be cpu, cuda or auto, got {self.device!r}")
        if not self.terrains:
            raise RLError("name at least one terrain")
        try:
            names = tuple(make_terrain(t).name for t in self.terrains)
        except ValueError as exc:
            raise RLError(str(exc)) from exc
        if len(set(names)) != len(names):
            raise RLError(f"terrains repeat: {', '.join(self.terrains)}")
        object.__setattr__(self, "terrains", names)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["terrains"] = list(self.terrains)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RLConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["terrains"] = tuple(known.get("terrains", ALL_TERRAINS))
        return cls(**known)


def terrain_prompts(record: dict[str, Any], terrains: Sequence[str]) -> list[dict[str, str]]:
    """One dataset row per terrain: ``{"prompt": ..., "terrain": name}`` (module docstring)."""
    from evolm.domains.sodarace.terrains import make_terrain

    source = source_from_record(record)
    return [
        {"prompt": stage_prompt(source, terrain=make_terrain(t)), "terrain": make_terrain(t).name}
        for t in terrains
    ]


TERRAIN_METRIC = "terrain_reward/"
"""The prefix of the per-terrain mean rewards the reward function logs through trl."""


def terrain_params(record: dict[str, Any], terrain: str) -> dict[str, Any]:
    """The Stage-2 run's Sodarace parameters with ``terrain`` in place of its own (its terrain
    geometry and direction dropped: each terrain comes with its own)."""
    params = {
        k: v
        for k, v in (record.get("params") or {}).items()
        if k not in ("terrain", "terrain_params", "direction", "record_fps")
    }
    params["terrain"] = terrain
    return params


def sandbox_reward(
    scorer: Scorer, invalid_reward: float = -1.0, seed: int = 0
) -> Callable[[Sequence[str], Sequence[str]], tuple[list[float], float]]:
    """``reward(codes, terrains) -> (rewards, valid share)``: each program's fitness on its
    terrain, evaluated by ``scorer`` (in the sandbox); ``invalid_reward`` when it fails."""

    def reward(codes: Sequence[str], terrains: Sequence[str]) -> tuple[list[float], float]:
        evaluations = scorer.evaluate(codes, terrains, seed=seed)
        rewards = [
            float(ev.fitness) if ev.ok and ev.fitness is not None else invalid_reward
            for ev in evaluations
        ]
        valid = sum(1 for ev in evaluations if ev.ok) / len(evaluations) if evaluations else 0.0
        return rewards, valid

    return reward


def _trl() -> tuple[Any, Any, Any]:
    try:
        import datasets
        import transformers
        import trl
    except ImportError as exc:
        raise RLError(
            f"Stage 3 needs trl, datasets and transformers ({exc.name} is missing): "
            "pip install 'evolm[train]'"
        ) from exc
    return trl, datasets, transformers


def _read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _metrics_line(step: int, logs: dict[str, Any]) -> dict[str, Any]:
    """A step's trl logs with short names: ``reward``, ``reward_std``, ``kl``, ``loss`` ...,
    and ``terrain_rewards``: the mean reward on each terrain prompted at that step."""
    out: dict[str, Any] = {"step": step}
    for key, value in logs.items():
        name = key
        if key.startswith(TERRAIN_METRIC):
            out.setdefault("terrain_rewards", {})[key[len(TERRAIN_METRIC) :]] = value
            continue
        if key.startswith("rewards/") and key.endswith("/mean"):
            name = "reward_" + key.split("/")[1]
        elif key.startswith("rewards/"):
            continue
        out[name] = value
    return out


def _truncate_metrics(path: Path, last_step: int) -> None:
    if not path.exists():
        return
    keep = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line)["step"] <= last_step
    ]
    path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")


def read_metrics(out_dir: str | Path) -> list[dict[str, Any]]:
    """The per-step lines of ``metrics.jsonl``."""
    path = Path(out_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _start(
    stage2_dir: str | Path | None, out: Path, config: RLConfig | None, resume: bool
) -> tuple[dict[str, Any], dict[str, Any], RLConfig, str | None]:
    """(rl.json record, Stage-2 record, config, checkpoint to resume from or None)."""
    from transformers.trainer_utils import get_last_checkpoint

    path = out / RL_FILE
    if resume:
        if not path.is_file():
            raise RLError(
                f"{out} holds no {RL_FILE}: nothing to resume (start it without --resume)"
            )
        run = _read_json(path)
        if run.get("status") == "completed":
            raise RLError(
                f"the Stage-3 run in {out} completed its {run['config']['steps']} steps; "
                "start a new one in another directory"
            )
        cfg = RLConfig.from_dict(run["config"])
        stage2 = read_stage2(run["stage2"])
        ckpt_dir = out / "checkpoints"
        last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
        return run, stage2, cfg, last
    if path.exists():
        raise RLError(
            f"{out} already holds a Stage-3 run ({RL_FILE}); continue it with --resume or "
            "choose another --out"
        )
    if stage2_dir is None:
        raise RLError("name the Stage-2 directory (`evolm distill --out DIR`) to start from")
    stage2 = read_stage2(stage2_dir)
    if not (Path(stage2_dir) / "adapter").is_dir():
        raise RLError(f"{stage2_dir} has no adapter/ directory: the Stage-2 round did not finish")
    cfg = config or RLConfig()
    run = {
        "stage": 3,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "stage2": str(Path(stage2_dir).resolve()),
        "base_model": stage2["base_model"],
        "domain": stage2["domain"],
        "config": cfg.to_dict(),
        "algorithm": "grpo (trl.GRPOTrainer), KL to the Stage-2 adapter",
        "status": "running",
    }
    return run, stage2, cfg, None


def train_rl(
    stage2_dir: str | Path | None,
    out_dir: str | Path,
    *,
    config: RLConfig | None = None,
    reward: Reward | None = None,
    resume: bool = False,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    max_steps_now: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) Stage 3 from the Stage-2 round in ``stage2_dir`` into ``out_dir``.

    Args:
        stage2_dir: the output directory of :func:`~evolm.finetune.distill.distill` (ignored
            with ``resume``: ``rl.json`` names it).
        out_dir: this run's directory (module docstring for its files).
        config: hyper-parameters (ignored with ``resume``: ``rl.json`` holds them).
        reward: ``reward(codes, terrains) -> rewards``; default: the walker's distance on the
            terrain, in the sandbox.
        resume: continue the run in ``out_dir`` from its last checkpoint.
        on_step: called with each step's metrics line.
        max_steps_now: stop after this many steps of this call (a checkpoint is saved there),
            leaving the run resumable; for interrupting a run on purpose.

    Returns:
        The ``rl.json`` record.

    Raises:
        RLError: bad settings, a missing or unfinished Stage-2 directory, a run to resume that
            is not there or is finished, or a Stage-2 model of another domain than Sodarace
            without a ``reward``.
    """
    out = Path(out_dir)
    run, stage2, cfg, last = _start(stage2_dir, out, config, resume)
    if reward is None and stage2["domain"] != "sodarace":
        raise RLError(
            f"Stage 3 conditions on Sodarace terrains; {run['stage2']} was trained on a "
            f"{stage2['domain']!r} run"
        )
    trl, datasets, transformers = _trl()
    import torch

    from evolm.finetune.export import ExportError, export_gguf_adapter
    from evolm.finetune.train import load_base
    from evolm.llm.local import default_threads

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise RLError("device 'cuda' was asked for but torch sees no CUDA GPU; use cpu or auto")
    on_cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    if cfg.use_vllm and on_cpu:
        raise RLError("vLLM generation needs a CUDA GPU (use_vllm with device cuda or auto)")
    out.mkdir(parents=True, exist_ok=True)
    rows = terrain_prompts(stage2, cfg.terrains)
    if not resume:
        with (out / "prompts.jsonl").open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
        run["prompts"] = rows
        _write_json(out / RL_FILE, run)
    step_at_start = int(last.rsplit("-", 1)[1]) if last else 0
    _truncate_metrics(out / "metrics.jsonl", step_at_start)

    scorer = None
    if reward is None:
        scorer = Scorer(
            "sodarace",
            {t: terrain_params(stage2, t) for t in cfg.terrains},
            workers=cfg.workers,
        )
        score = sandbox_reward(scorer, cfg.invalid_reward, cfg.seed)
    else:
        custom = reward

        def score(codes: Sequence[str], terrains: Sequence[str]) -> tuple[list[float], float]:
            return [float(r) for r in custom(codes, terrains)], float("nan")

    def distance(
        prompts: list[str], completions: list[str], terrain: list[str], **kwargs: Any
    ) -> list[float]:
        rewards, valid = score([extract_program(c) for c in completions], terrain)
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:
            if not math.isnan(valid):
                log_metric("valid_share", valid)
            for name in sorted(set(terrain)):
                mine = [r for r, t in zip(rewards, terrain, strict=True) if t == name]
                log_metric(TERRAIN_METRIC + name, sum(mine) / len(mine))
        return rewards

    threads = torch.get_num_threads()
    if on_cpu:
        torch.set_num_threads(default_threads())
    t0 = time.perf_counter()
    try:
        loaded = load_base(stage2["base_model"]["path"])
        _forget_gguf_origin(loaded.model)
        from peft import PeftModel

        tokenizer = loaded.tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = PeftModel.from_pretrained(
            loaded.model, str(Path(run["stage2"]) / "adapter"), is_trainable=True
        )
        per_step = cfg.generations * cfg.prompts_per_step
        args = trl.GRPOConfig(
            output_dir=str(out / "checkpoints"),
            max_steps=cfg.steps,
            per_device_train_batch_size=per_step,
            gradient_accumulation_steps=1,
            num_generations=cfg.generations,
            learning_rate=cfg.lr,
            lr_scheduler_type="constant",
            beta=cfg.beta,
            max_completion_length=cfg.max_completion_length,
            temperature=cfg.temperature,
            logging_steps=1,
            save_strategy="steps",
            save_steps=cfg.save_steps,
            report_to="none",
            seed=cfg.seed,
            data_seed=cfg.seed,
            use_cpu=on_cpu,
            bf16=False,
            gradient_checkpointing=False,
            disable_dropout=True,
            use_vllm=cfg.use_vllm,
            vllm_mode="colocate",
            disable_tqdm=True,
            dataloader_num_workers=0,
            **cfg.extra,
        )
        recorder = _Recorder(transformers, out, run, on_step, max_steps_now, step_at_start)
        trainer = trl.GRPOTrainer(
            model=model,
            reward_funcs=[distance],
            args=args,
            train_dataset=datasets.Dataset.from_list(rows),
            processing_class=tokenizer,
            callbacks=[recorder.callback],
        )
        trainer.remove_callback(transformers.PrinterCallback)  # metrics.jsonl holds the logs
        trainer.train(resume_from_checkpoint=last)
        finished = trainer.state.global_step >= cfg.steps
        if finished:
            peft_model = trainer.model
            peft_model.save_pretrained(str(out / "adapter"), selected_adapters=["default"])
            try:
                export_gguf_adapter(peft_model, out / "adapter.gguf", base_gguf=loaded.gguf)
                run["gguf"] = "adapter.gguf"
            except ExportError as exc:
                run["gguf"], run["gguf_error"] = None, str(exc)
    finally:
        torch.set_num_threads(threads)
        if scorer is not None:
            scorer.close()
    metrics = read_metrics(out)
    run["status"] = "completed" if finished else "interrupted"
    run["steps_done"] = trainer.state.global_step
    run["seconds"] = run.get("seconds", 0.0) + (time.perf_counter() - t0)
    run["summary"] = _summary(metrics)
    _write_json(out / RL_FILE, run)
    return run


def _forget_gguf_origin(model: Any) -> None:
    """Let transformers' Trainer train a model loaded from a GGUF file.

    transformers de-quantizes a GGUF into ordinary float32 weights but keeps a "GGUF quantizer"
    on the model, and ``Trainer`` refuses to train any model with a quantizer that does not
    support training. The weights are plain tensors, so the marker is dropped.
    """
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "quantization_config", None) is not None:
        del config.quantization_config
    if getattr(model, "is_quantized", False):
        model.is_quantized = False


def _summary(metrics: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """First and last rewards, mean KL and valid share over the recorded steps."""

    def values(key: str) -> list[float]:
        return [float(m[key]) for m in metrics if isinstance(m.get(key), int | float)]

    rewards, kls, valid = values("reward"), values("kl"), values("valid_share")
    return {
        "steps": len(metrics),
        "reward_first": rewards[0] if rewards else None,
        "reward_last": rewards[-1] if rewards else None,
        "reward_max": max(rewards) if rewards else None,
        "kl_mean": sum(kls) / len(kls) if kls else None,
        "kl_last": kls[-1] if kls else None,
        "valid_share_mean": sum(valid) / len(valid) if valid else None,
    }


class _Recorder:
    """A trl callback that writes ``metrics.jsonl`` and each checkpoint's ``evolm-rl.json``,
    and stops the run after ``max_steps_now`` steps of this call (with a checkpoint)."""

    def __init__(
        self,
        transformers: Any,
        out: Path,
        run: dict[str, Any],
        on_step: Callable[[dict[str, Any]], None] | None,
        max_steps_now: int | None,
        step_at_start: int,
    ) -> None:
        recorder = self

        class Callback(transformers.TrainerCallback):
            def on_log(
                self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any
            ) -> None:
                if logs and "loss" in logs:
                    recorder.log(state.global_step, logs)

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if max_steps_now is not None and state.global_step - step_at_start >= max_steps_now:
                    control.should_save = True
                    control.should_training_stop = True

            def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                recorder.checkpoint(path, state)

        self.callback = Callback()
        self.out, self.run, self.on_step = out, run, on_step

    def log(self, step: int, logs: dict[str, Any]) -> None:
        line = _metrics_line(step, logs)
        with (self.out / "metrics.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
        if self.on_step is not None:
            self.on_step(line)

    def checkpoint(self, path: Path, state: Any) -> None:
        if not path.is_dir():
            return
        _write_json(
            path / "evolm-rl.json",
            {
                "step": state.global_step,
                "stage2": self.run["stage2"],
                "config": self.run["config"],
                "metrics": read_metrics(self.out),
            },
        )
