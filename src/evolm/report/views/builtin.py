"""The built-in views of evolm's domains, from what a run database stores (never re-running a
program): one function per domain, each ``(params, program) -> HTML``.

Each view reads the stored ``extras`` defensively (a key may be missing, a value of another
type, or the extras cut to ``{"truncated": n}`` by the store) and raises ``ValueError`` for
what it cannot show; :func:`evolm.report.domain_views.view` turns that into a note.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from evolm.report.views.common import (
    code_block,
    esc,
    fmt,
    is_number,
    note,
    png_data_uri,
    scalar_items,
    table,
)
from evolm.report.views.pictures import packing_svg, walker_svg

__all__ = ["BUILTIN_VIEWS", "generic_view", "summary"]


def summary(program: Mapping[str, Any]) -> str:
    """One line: id, status, fitness and descriptors."""
    fitness = program.get("fitness")
    desc = program.get("descriptors")
    shown = (
        ", ".join(fmt(d) for d in desc)
        if isinstance(desc, Sequence) and not isinstance(desc, str)
        else "-"
    )
    return (
        f'<p class="evolm-summary">program {fmt(program.get("id"))} &middot; '
        f"{fmt(program.get('status'))} &middot; fitness "
        f"{fmt(fitness) if fitness is not None else '-'} &middot; descriptors ({shown})</p>"
    )


def _extras(program: Mapping[str, Any]) -> Mapping[str, Any]:
    extras = program.get("extras")
    return extras if isinstance(extras, Mapping) else {}


def generic_view(params: Mapping[str, Any], program: Mapping[str, Any]) -> str:
    """Any domain: the program's text and a table of the extras' scalar values."""
    items = scalar_items(_extras(program))
    body = table(items, ("extra", "value")) if items else note("no scalar extras stored")
    return body + code_block(program.get("code", ""), "program")


# -- sodarace ------------------------------------------------------------------------------
def sodarace_view(params: Mapping[str, Any], program: Mapping[str, Any]) -> str:
    """The walker's body (from ``extras["walker"]``) and its distance, size and terrain."""
    ex = _extras(program)
    rows = [(k, ex[k]) for k in ("terrain", "dx", "joints", "muscles", "active_muscles") if k in ex]
    info = table(rows) if rows else ""
    if "walker" not in ex:
        return (
            note(
                "no walker body stored with this evaluation (failed programs have none, and "
                "runs made before evolm stored bodies neither); the report's animations "
                "re-run elites to draw them"
            )
            + info
        )
    return walker_svg(ex["walker"]) + info


# -- image ---------------------------------------------------------------------------------
def image_view(params: Mapping[str, Any], program: Mapping[str, Any]) -> str:
    """The target picture and the mean colour the program's picture has (its descriptors);
    the picture itself is not stored (``renders`` re-draws it in the sandbox)."""
    from evolm.domains.image import make_target

    ex = _extras(program)
    target = str(ex.get("target", params.get("target", "circle")))
    size = params.get("size", 32)
    parts = []
    try:
        uri = png_data_uri(make_target(target, int(size)))
        parts.append(
            f'<figure class="evolm-image"><img alt="target {esc(target)}" src="{uri}" '
            'width="128" height="128" style="image-rendering:pixelated"/>'
            f"<figcaption>target: {esc(target)}</figcaption></figure>"
        )
    except (ValueError, TypeError) as exc:
        parts.append(note(f"cannot draw the target: {exc}"))
    desc = program.get("descriptors")
    if isinstance(desc, Sequence) and len(desc) == 3 and all(is_number(v) for v in desc):
        r, g, b = (round(255 * min(max(float(v), 0.0), 1.0)) for v in desc)
        parts.append(
            '<figure class="evolm-swatch"><svg width="64" height="64" role="img" '
            f'aria-label="mean colour"><rect width="64" height="64" fill="rgb({r},{g},{b})"/>'
            "</svg><figcaption>mean colour of the picture</figcaption></figure>"
        )
    pictures = '<div style="display:flex;gap:1em;align-items:flex-start">' + "".join(parts)
    return (
        pictures
        + "</div>"
        + note("the program's own picture is drawn by re-running it (renders)")
        + code_block(program.get("code", ""), "program")
    )


def image_picture(pixels: Any, params: Mapping[str, Any], caption: str) -> str:
    """A rendered picture (an ``(s, s, 3)`` array) beside the target, as PNG data URIs."""
    from evolm.domains.image import make_target

    uri = png_data_uri(pixels)
    out = [
        f'<figure class="evolm-image"><img alt="{esc(caption)}" src="{uri}" width="128" '
        f'height="128" style="image-rendering:pixelated"/><figcaption>{esc(caption)}'
        "</figcaption></figure>"
    ]
    target = str(params.get("target", "circle"))
    try:
        t_uri = png_data_uri(make_target(target, int(params.get("size", 32))))
        out.append(
            f'<figure class="evolm-image"><img alt="target" src="{t_uri}" width="128" '
            'height="128" style="image-rendering:pixelated"/>'
            f"<figcaption>target: {esc(target)}</figcaption></figure>"
        )
    except (ValueError, TypeError):
        pass
    return '<div style="display:flex;gap:1em;align-items:flex-start">' + "".join(out) + "</div>"


# -- parity --------------------------------------------------------------------------------
def parity_view(params: Mapping[str, Any], program: Mapping[str, Any]) -> str:
    """The truth table as a 4 x 4 grid (rows b1 b2, columns b3 b4): each cell the program's
    answer, green when it is the parity, red otherwise (the parity in small beside it)."""
    from evolm.domains.parity import INPUTS

    ex = _extras(program)
    answers = ex.get("answers")
    parts = []
    if isinstance(answers, Sequence) and len(answers) == len(INPUTS):
        got = dict(zip(INPUTS, answers, strict=True))
        pairs = ((0, 0), (0, 1), (1, 0), (1, 1))
        rows = ['<table class="evolm-truth" style="border-collapse:collapse;text-align:center">'
                "<thead><tr><th>b1 b2 \\ b3 b4</th>"]  # fmt: skip
        rows += [f"<th>{c} {d}</th>" for c, d in pairs]
        rows.append("</tr></thead><tbody>")
        right = 0
        for a, b in pairs:
            rows.append(f"<tr><th>{a} {b}</th>")
            for c, d in pairs:
                want = (a + b + c + d) % 2
                answer = got[(a, b, c, d)]
                ok = answer == want and not isinstance(answer, bool)
                right += ok
                colour = "#cfe8cf" if ok else "#f3c6c6"
                shown = "raised" if answer is None else fmt(answer)
                rows.append(
                    f'<td class="{"ok" if ok else "wrong"}" style="background:{colour};'
                    f'padding:2px 8px;border:1px solid #fff">{shown} '
                    f'<small title="the parity">({want})</small></td>'
                )
            rows.append("</tr>")
        rows.append(f"</tbody></table><p>{right} of {len(INPUTS)} right (parity in brackets)</p>")
        parts.append("".join(rows))
    else:
        parts.append(note("no truth table stored (the program did not load)"))
    if ex.get("first_problem"):
        parts.append(f"<p>first problem: {fmt(ex['first_problem'])}</p>")
    return "".join(parts) + code_block(program.get("code", ""), "program")


# -- puzzles -------------------------------------------------------------------------------
def _puzzle_f(params: Mapping[str, Any], name: Any) -> str | None:
    """The source of the puzzle's ``f``: from the run's domain, else the library by name."""
    from evolm.domains.puzzles import LIBRARY, PuzzleDomain

    try:
        solve = {k: v for k, v in params.items() if k != "mode"}
        return PuzzleDomain(**solve).puzzle.f
    except (ValueError, TypeError, OSError):
        pass
    for p in LIBRARY:
        if p.name == name:
            return p.f
    return None


def _side_by_side(left: str, right: str) -> str:
    return (
        '<div class="evolm-pair" style="display:flex;gap:1em;flex-wrap:wrap">'
        f'<div style="flex:1 1 32em;min-width:0;overflow:auto">{left}</div>'
        f'<div style="flex:1 1 32em;min-width:0;overflow:auto">{right}</div></div>'
    )


def puzzles_view(params: Mapping[str, Any], program: Mapping[str, Any]) -> str:
    """Solve mode: the puzzle ``f`` and the program ``g`` side by side, and whether it solved
    it; co-evolution: a puzzle with its difficulty and skill tags, or a solution attempt."""
    ex = _extras(program)
    population = ex.get("population")
    if population == "puzzles" or (population is None and params.get("mode") == "coevolve"):
        return _coevolved_puzzle(program, ex)
    if population == "solutions":
        head = table([("solves puzzle", ex.get("puzzle", "-")), ("answer", ex.get("answer", "-"))])
        return head + code_block(program.get("code", ""), "solution g")
    f = _puzzle_f(params, ex.get("puzzle"))
    solved = ex.get("solved")
    verdict = "solved" if solved is True else "not solved" if solved is False else "not checked"
    rows = [(k, ex[k]) for k in ("puzzle", "grade") if k in ex] + [("verdict", verdict)]
    rows += [("answer", ex["answer"])] if "answer" in ex else []
    left = code_block(f, "puzzle f") if f is not None else note("the puzzle's source is unknown")
    return table(rows) + _side_by_side(left, code_block(program.get("code", ""), "solution g"))


def _coevolved_puzzle(program: Mapping[str, Any], ex: Mapping[str, Any]) -> str:
    from evolm.domains.puzzles.coevolve import split_pair

    code = str(program.get("code", ""))
    try:
        f_src, g_src = split_pair(code)
    except ValueError:
        f_src, g_src = code, ""
    rows: list[tuple[str, Any]] = []
    fitness = program.get("fitness")
    if is_number(fitness):
        rows.append(("difficulty", fitness))
    for key in ("solved", "k", "solve_rate", "reference"):
        if key in ex:
            rows.append((key, ex[key]))
    tags = ex.get("tags")
    if isinstance(tags, Mapping):
        on = [str(k) for k, v in tags.items() if v]
        rows.append(("skill tags", ", ".join(on) or "none"))
    solved_by = ex.get("solved_by")
    if isinstance(solved_by, Sequence) and not isinstance(solved_by, str):
        rows.append(("solved by programs", ", ".join(map(str, solved_by[:20])) or "none"))
    right = code_block(g_src, "reference solution g") if g_src else note("no reference g")
    return table(rows) + _side_by_side(code_block(f_src, "puzzle f"), right)


# -- texts: poetry and prompts ---------------------------------------------------------------
def _bars(items: Sequence[tuple[str, Any]]) -> str:
    """A table of probabilities (or shares) in [0, 1], each with a bar."""
    rows = ['<table class="evolm-bars"><tbody>']
    for name, value in items:
        p = float(value) if is_number(value) else math.nan
        width = round(120 * min(max(p, 0.0), 1.0)) if math.isfinite(p) else 0
        rows.append(
            f"<tr><th>{esc(name)}</th><td>{fmt(value)}</td><td>"
            f'<svg width="120" height="10" role="img" aria-label="{esc(name)}">'
            f'<rect width="120" height="10" fill="#eee"/><rect width="{width}" height="10" '
            'fill="#4a7fb0"/></svg></td></tr>'
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _text(program: Mapping[str, Any], label: str) -> str:
    return (
        f'<figure class="evolm-text"><figcaption>{esc(label)}</figcaption>'
        f'<blockquote style="white-space:pre-wrap">{esc(str(program.get("code", ""))[:20_000])}'
        "</blockquote></figure>"
    )


def poetry_view(params: Mapping[str, Any], program: Mapping[str, Any]) -> str:
    """The text, its quality and its probability on each axis (and every judge answer)."""
    ex = _extras(program)
    items: list[tuple[str, Any]] = []
    if "quality" in ex:
        items.append(("quality", ex["quality"]))
    probs = ex.get("probs")
    if isinstance(probs, Mapping):
        items += [(str(k), v) for k, v in probs.items()]
    parts = [_text(program, params.get("kind", "text") if isinstance(params, Mapping) else "")]
    parts.append(_bars(items) if items else note("no judge scores stored"))
    judge = ex.get("judge")
    if isinstance(judge, Mapping):
        rows = []
        for question, answer in judge.items():
            if isinstance(answer, Mapping):
                shown = ", ".join(f"{esc(o)}: {fmt(p)}" for o, p in list(answer.items())[:8])
                rows.append(f"<tr><th>{esc(question)}</th><td>{shown}</td></tr>")
        if rows:
            parts.append(
                '<table class="evolm-judge"><thead><tr><th>question</th><th>answer '
                "probabilities</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            )
    return "".join(parts)


def prompts_view(params: Mapping[str, Any], program: Mapping[str, Any]) -> str:
    """The instruction, its validation accuracy and answer-format share, and each item's
    answer marked right or wrong."""
    ex = _extras(program)
    parts = [_text(program, "instruction")]
    items = [(k, ex[k]) for k in ("validation_accuracy", "format_share") if k in ex]
    parts.append(_bars(items) if items else note("no accuracy stored"))
    correct, answers = ex.get("correct"), ex.get("answers")
    if isinstance(correct, Sequence) and isinstance(answers, Sequence):
        cases = _validation_items(params)
        if cases is not None and len(cases) != len(answers):
            cases = None
        rows = []
        for i, (ok, ans) in enumerate(zip(correct, answers, strict=False)):
            mark = "&#10003;" if ok is True else "&#10007;"
            shown = ""
            if cases:
                shown = f"<td>{fmt(cases[i].input)}</td><td>{fmt(cases[i].target)}</td>"
            rows.append(f"<tr><td>{i + 1}</td>{shown}<td>{fmt(ans)}</td><td>{mark}</td></tr>")
        given = "<th>input</th><th>target</th>" if cases else ""
        parts.append(
            f'<table class="evolm-answers"><thead><tr><th>item</th>{given}<th>answer</th>'
            "<th></th></tr></thead><tbody>" + "".join(rows[:100]) + "</tbody></table>"
        )
    parts.append(
        note(
            "validation split (the fitness); the test split is scored after a run by "
            "evolm prompt-test"
        )
    )
    return "".join(parts)


def _validation_items(params: Mapping[str, Any]) -> Any:
    """The run's validation items (bundled data, rebuilt from the parameters), or None."""
    from evolm.domains.prompts import PromptsDomain

    try:
        return PromptsDomain(**params).splits.validation
    except (ValueError, TypeError, OSError):
        return None


# -- task (circle packing and other evaluators) ----------------------------------------------
def task_view(params: Mapping[str, Any], program: Mapping[str, Any]) -> str:
    """The evaluator's metrics, and a picture of the packing when the metrics hold
    ``centers`` (a list of ``[x, y]``) and ``radii`` (as many numbers)."""
    ex = _extras(program)
    metrics = ex.get("metrics")
    parts = []
    if isinstance(metrics, Mapping):
        if "centers" in metrics and "radii" in metrics:
            try:
                parts.append(packing_svg(metrics["centers"], metrics["radii"]))
            except ValueError as exc:
                parts.append(note(f"cannot draw the packing: {exc}"))
        rows = [(k, v) for k, v in scalar_items(metrics) if k not in ("centers", "radii")]
        parts.append(table(rows, ("metric", "value")) if rows else note("no scalar metrics"))
    else:
        parts.append(note("no metrics stored (the program or the evaluator failed first)"))
    if "failure" in ex:
        parts.append(f"<p>failure on the {fmt(ex['failure'])} side</p>")
    return "".join(parts) + code_block(program.get("code", ""), "program")


BUILTIN_VIEWS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], str]] = {
    "sodarace": sodarace_view,
    "image": image_view,
    "parity": parity_view,
    "puzzles": puzzles_view,
    "poetry": poetry_view,
    "prompts": prompts_view,
    "task": task_view,
}
"""View of each built-in domain by registry name."""
