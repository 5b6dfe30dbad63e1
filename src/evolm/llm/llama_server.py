"""``python -m evolm.llm.llama_server ARGS``: llama-cpp-python's OpenAI-compatible server.

The same server and arguments as ``python -m llama_cpp.server ARGS`` (``pip install
'evolm[server]'``), with models loaded as evolm's embedded backend loads them: llama.cpp's extra
CPU buffer types off (:func:`evolm.llm.llama_cpp.extra_buffers_off`), without which a native
build crashes on CPUs with AMX. Serve the embedded model to several runs with::

    python -m evolm.llm.llama_server --model "$(evolm models --path)" --port 8080
"""

from __future__ import annotations

import runpy

from evolm.llm.llama_cpp import extra_buffers_off


def main() -> None:
    """Run ``llama_cpp.server`` as ``__main__`` with the extra buffer types off."""
    extra_buffers_off()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
