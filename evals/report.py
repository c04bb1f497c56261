"""The eval report: targets, per-category scores, timings, machine and load, every failure with its transcript."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evals.cases import Case
from evals.checks import has_tool_json
from evals.runner import CaseResult, RunSummary, percentile


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f} %)" if whole else "n/a"


def _fmt(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:.2f}{unit}"


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, like the Makefile
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def metrics(summary: RunSummary) -> dict[str, Any]:
    results = summary.results
    tool = [r for r in results if r.case.kind == "tool"]
    tool_ok = [r for r in tool if r.checks.get(f"called {r.case.tool} with valid arguments")]
    arithmetic = [r for r in tool if r.case.number is not None]
    arithmetic_ok = [r for r in arithmetic if r.checks.get(f"answer contains {r.case.number:g}")]
    recall = [r for r in results if r.case.kind == "recall" and not r.case.same_session]
    recall_ok = [r for r in recall if r.checks.get("recalls the fact")]
    turns = [(r.case, index, turn) for r in results for index, turn in enumerate(r.turns)]
    json_answers = [t for _, _, t in turns if has_tool_json(t.answer)]
    language_scored = [
        r for r in results if "language" in r.checks or "second answer in the second language" in r.checks
    ]
    language_ok = [
        r for r in language_scored if r.checks.get("language", r.checks.get("second answer in the second language"))
    ]
    false_memories = sum(len(r.false_memories) for r in results) + len(summary.main_account_false)
    first = [t.ttft for c, i, t in turns if i == 0 and t.ttft is not None and c.kind in ("tool", "chat", "language")]
    first_chat = [t.ttft for c, i, t in turns if i == 0 and t.ttft is not None and c.kind == "chat"]
    first_tool = [t.ttft for c, i, t in turns if i == 0 and t.ttft is not None and c.kind == "tool"]
    rates = [rate for _, _, t in turns if (rate := t.generation_tokens_per_second) is not None]
    generation = statistics.median(rates) if rates else None
    raw = summary.raw_generation_tps
    return {
        "tool_valid": (len(tool_ok), len(tool)),
        "arithmetic": (len(arithmetic_ok), len(arithmetic)),
        "tool_json_answers": len(json_answers),
        "answers": len([t for _, _, t in turns]),
        "false_memories": false_memories,
        "recall": (len(recall_ok), len(recall)),
        "language": (len(language_ok), len(language_scored)),
        "ttft_p50": percentile(first, 50),
        "ttft_p95": percentile(first, 95),
        "ttft_chat_p50": percentile(first_chat, 50),
        "ttft_chat_p95": percentile(first_chat, 95),
        "ttft_tool_p50": percentile(first_tool, 50),
        "generation_tps": generation,
        "raw_generation_tps": raw,
        "generation_ratio": (generation / raw) if generation and raw else None,
        "passed": (len([r for r in results if r.passed]), len(results)),
    }


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def _ratio(pair: tuple[int, int]) -> float | None:
    return pair[0] / pair[1] if pair[1] else None


def render(summary: RunSummary, base_url: str, label: str) -> str:
    m = metrics(summary)
    lines = [
        f"# Eval: {label}",
        "",
        f"Run {datetime.fromtimestamp(summary.started, UTC):%Y-%m-%d %H:%M} UTC, "
        f"{(summary.finished - summary.started) / 60:.1f} min, commit {_commit()}, against {base_url} "
        f"(model reported by the server: `{summary.model()}`).",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
        f"load average (1/5/15 min) at the start {'/'.join(f'{x:.2f}' for x in summary.load_start)}, "
        f"at the end {'/'.join(f'{x:.2f}' for x in summary.load_end)}; "
        f"median 1-min load during the cases {statistics.median(r.load for r in summary.results):.2f}.",
        "",
        "## Targets",
        "",
        "| target | measured | goal | met |",
        "|---|---:|---:|:---:|",
    ]
    tool_rate, arith_rate = _ratio(m["tool_valid"]), _ratio(m["arithmetic"])
    recall_rate, lang_rate = _ratio(m["recall"]), _ratio(m["language"])
    rows = [
        ("tool cases: right tool, valid arguments", _pct(*m["tool_valid"]), "≥ 90 %", tool_rate and tool_rate >= 0.9),
        (
            "answers containing tool-call JSON",
            f"{m['tool_json_answers']} of {m['answers']}",
            "0",
            m["tool_json_answers"] == 0,
        ),
        ("arithmetic answered correctly", _pct(*m["arithmetic"]), "≥ 95 %", arith_rate and arith_rate >= 0.95),
        ("false memories (whole suite)", str(m["false_memories"]), "0", m["false_memories"] == 0),
        ("stated facts recalled in a new session", _pct(*m["recall"]), "≥ 80 %", recall_rate and recall_rate >= 0.8),
        ("language matches the latest message", _pct(*m["language"]), "≥ 95 %", lang_rate and lang_rate >= 0.95),
        (
            "first token, first message of a new session, p50",
            _fmt(m["ttft_p50"], " s"),
            "≤ 3 s",
            m["ttft_p50"] is not None and m["ttft_p50"] <= 3,
        ),
        (
            "generation vs raw llama.cpp (`agentserver model bench`)",
            "n/a" if m["generation_ratio"] is None else f"{100 * m['generation_ratio']:.0f} %",
            "≥ 90 %",
            None if m["generation_ratio"] is None else m["generation_ratio"] >= 0.9,
        ),
    ]
    lines += [
        f"| {name} | {value} | {goal} | {_met(bool(ok) if ok is not None else None)} |"
        for name, value, goal, ok in rows
    ]
    lines += [
        "",
        "## Timings",
        "",
        "- First token, first message of a new session (tool, chat and language cases): "
        f"p50 {_fmt(m['ttft_p50'], ' s')}, p95 {_fmt(m['ttft_p95'], ' s')}",
        f"- of which no-tool chat: p50 {_fmt(m['ttft_chat_p50'], ' s')}, p95 {_fmt(m['ttft_chat_p95'], ' s')}; "
        f"tool cases (decision + tool + answer): p50 {_fmt(m['ttft_tool_p50'], ' s')}",
        "- Generation through the API (median over answers of ≥ 20 streamed tokens): "
        f"{_fmt(m['generation_tps'], ' tok/s')}",
        f"- Raw llama.cpp in the same run (`agentserver model bench`, median of 3): generation "
        f"{_fmt(summary.raw_generation_tps, ' tok/s')}, prompt {_fmt(summary.raw_prompt_tps, ' tok/s')}",
        "",
        "## Scores by category",
        "",
        "| category | passed | English | Korean |",
        "|---|---:|---:|---:|",
    ]
    by_category: dict[str, list[CaseResult]] = defaultdict(list)
    for result in summary.results:
        by_category[result.case.category].append(result)
    for category, group in by_category.items():
        en = [r for r in group if r.case.lang == "en"]
        ko = [r for r in group if r.case.lang == "ko"]
        lines.append(
            f"| {category} | {_pct(sum(r.passed for r in group), len(group))} | "
            f"{_pct(sum(r.passed for r in en), len(en))} | {_pct(sum(r.passed for r in ko), len(ko))} |"
        )
    total = m["passed"]
    lines += [f"| **all** | **{_pct(*total)}** | | |", ""]
    if summary.main_account_false:
        lines += ["False memories stored from the tool/chat/language cases (one account):", ""]
        lines += [f"- {memory}" for memory in summary.main_account_false] + [""]
    failures = [r for r in summary.results if not r.passed]
    lines += [f"## Failures ({len(failures)})", ""]
    for result in failures:
        lines += _transcript(result)
    return "\n".join(lines) + "\n"


def _quote(text: str, limit: int = 700) -> str:
    text = text.strip() or "(empty)"
    if len(text) > limit:
        text = text[:limit] + " …"
    return text.replace("\n", "\n> ")


def _transcript(result: CaseResult) -> list[str]:
    case: Case = result.case
    failed = [name for name, ok in result.checks.items() if not ok]
    lines = [f"### {case.id} ({case.category}, {case.lang})", "", "Failed: " + "; ".join(failed), ""]
    for turn in result.turns:
        lines.append(f"> **user:** {_quote(turn.message)}")
        for call in turn.tool_calls:
            lines.append(f"> *tool call:* `{call.get('name')}({json.dumps(call.get('args'), ensure_ascii=False)})`")
        for tool_result in turn.tool_results:
            lines.append(f"> *tool result:* {_quote(str(tool_result.get('content')), 200)}")
        if turn.error:
            lines.append(f"> *error:* {turn.error}")
        lines.append(f"> **assistant:** {_quote(turn.answer)}")
        lines.append(">")
    if result.memories:
        lines.append("Memories stored: " + "; ".join(f"“{m}”" for m in result.memories))
    if result.false_memories:
        lines.append("False memories: " + "; ".join(f"“{m}”" for m in result.false_memories))
    return [*lines, ""]


def write(summary: RunSummary, base_url: str, label: str, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{label}.md"
    path.write_text(render(summary, base_url, label), encoding="utf-8")
    return path
