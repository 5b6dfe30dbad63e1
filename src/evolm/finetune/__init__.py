"""Self-improvement: fine-tune the mutation model on the mutations a search accepted (ELM §4).

- :func:`build_dataset` (:mod:`evolm.finetune.dataset`): prompt/completion pairs from run
  databases, in the prompt formats of evolm's operators or as the LLM calls recorded them.
- :func:`train_lora` (:mod:`evolm.finetune.train`): a LoRA round with peft on the base model the
  embedded backend runs; writes the peft adapter, a GGUF adapter and a card.
- :func:`export_gguf_adapter` (:mod:`evolm.finetune.export`): a peft LoRA as a GGUF adapter for
  llama.cpp (with the q/k row permutation llama.cpp's layout needs).
- :func:`distill` (:mod:`evolm.finetune.distill`): ELM Stage 2, a model trained on the archive's
  elites above a per-niche fitness cut, and :func:`evaluate_stage2`.
- :func:`train_rl` (:mod:`evolm.finetune.rl`): ELM Stage 3, terrain-conditioned GRPO with a KL
  penalty to the Stage-2 model, rewarded in the sandbox; :func:`evaluate_terrains`
  (:mod:`evolm.finetune.terrain_eval`) is ELM §6's table.

Torch, transformers, peft, gguf and trl are imported only when training or exporting starts
(``pip install 'evolm[train]'``).
"""

from evolm.finetune.dataset import (
    ACCEPT,
    FORMATS,
    SPLITS,
    DatasetCounts,
    DatasetError,
    Example,
    SFTDataset,
    build_dataset,
    read_jsonl,
)
from evolm.finetune.distill import (
    build_distill_dataset,
    distill,
    evaluate_stage2,
    select_elites,
)
from evolm.finetune.export import (
    ExportError,
    export_gguf_adapter,
    gguf_tensor_name,
    lora_weights,
    permute_qk,
    write_gguf_lora,
)
from evolm.finetune.rl import RLConfig, RLError, train_rl
from evolm.finetune.terrain_eval import evaluate_terrains
from evolm.finetune.train import (
    DEFAULT_TARGETS,
    BaseModel,
    Encoded,
    TrainConfig,
    TrainError,
    TrainMetrics,
    TrainResult,
    encode_example,
    load_base,
    train_adapter,
    train_lora,
)

__all__ = [
    "ACCEPT",
    "DEFAULT_TARGETS",
    "FORMATS",
    "SPLITS",
    "BaseModel",
    "DatasetCounts",
    "DatasetError",
    "Encoded",
    "Example",
    "ExportError",
    "RLConfig",
    "RLError",
    "SFTDataset",
    "TrainConfig",
    "TrainError",
    "TrainMetrics",
    "TrainResult",
    "build_dataset",
    "build_distill_dataset",
    "distill",
    "encode_example",
    "evaluate_stage2",
    "evaluate_terrains",
    "export_gguf_adapter",
    "gguf_tensor_name",
    "load_base",
    "lora_weights",
    "permute_qk",
    "read_jsonl",
    "select_elites",
    "train_adapter",
    "train_lora",
    "train_rl",
    "write_gguf_lora",
]
