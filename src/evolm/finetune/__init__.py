"""Self-improvement: fine-tune the mutation model on the mutations a search accepted (ELM §4).

- :func:`build_dataset` (:mod:`evolm.finetune.dataset`): prompt/completion pairs from run
  databases, in the prompt formats of evolm's operators or as the LLM calls recorded them.
- :func:`train_lora` (:mod:`evolm.finetune.train`): a LoRA round with peft on the base model the
  embedded backend runs; writes the peft adapter, a GGUF adapter and a card.
- :func:`export_gguf_adapter` (:mod:`evolm.finetune.export`): a peft LoRA as a GGUF adapter for
  llama.cpp (with the q/k row permutation llama.cpp's layout needs).

Torch, transformers, peft and gguf are imported only when training or exporting starts
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
from evolm.finetune.export import (
    ExportError,
    export_gguf_adapter,
    gguf_tensor_name,
    lora_weights,
    permute_qk,
    write_gguf_lora,
)
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
    "SFTDataset",
    "TrainConfig",
    "TrainError",
    "TrainMetrics",
    "TrainResult",
    "build_dataset",
    "encode_example",
    "export_gguf_adapter",
    "gguf_tensor_name",
    "load_base",
    "lora_weights",
    "permute_qk",
    "read_jsonl",
    "train_adapter",
    "train_lora",
    "write_gguf_lora",
]
