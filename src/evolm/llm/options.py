"""Scoring answer options from a model's next-token distribution (requests with ``options``).

Both local backends (llama_cpp, hf) score an option as the tokens of ``prompt + option`` that
follow the prompt's tokens. Tokenizers may merge text across the boundary (a prompt ending in a
space and an option starting with a word become one token), so the prompt's tokens are not
always a prefix of ``prompt + option``'s. :func:`split_at_boundary` then does what token
healing does for generation: the context is cut back to the longest prefix that every option's
tokens share with the prompt's, and each option is scored as everything after that prefix (the
prompt's tail and the option together). The tail's text is the same for every option, so after
renormalising over the options it mostly cancels out.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["split_at_boundary"]


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def split_at_boundary(
    prompt: Sequence[int], full: Sequence[Sequence[int]]
) -> tuple[int, list[list[int]]]:
    """The shared context length and each option's tokens to score after it.

    Args:
        prompt: the prompt's tokens.
        full: for each option, the tokens of the prompt's text followed by the option's.

    Returns:
        ``(k, continuations)``: the first ``k`` prompt tokens are the context of every option,
        and option ``i`` is scored as ``full[i][k:]``. ``k`` is ``len(prompt)`` when the
        prompt's tokens are a prefix of every ``full[i]``.

    Raises:
        ValueError: the context would be empty, or an option adds no token.
    """
    k = min([len(prompt), *(_common(prompt, f) for f in full)])
    if k == 0:
        raise ValueError("the prompt shares no token with prompt + option; give a prompt")
    rest = [list(f[k:]) for f in full]
    for r in rest:
        if not r:
            raise ValueError("an option adds no token to the prompt; options must not be empty")
    return k, rest
