"""LoRA adapters that ship with evolm (GGUF, for the embedded llama.cpp backend).

Name one in a config as ``llm.lora = "package:NAME"``; ``docs/self-improvement.md`` says how each
was trained and how to reproduce it.
"""
