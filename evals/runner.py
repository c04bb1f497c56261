"""Run eval cases against a server and score them (see `cases.py` for what each kind checks)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from evals import checks
from evals.cases import Case
from evals.client import EvalClient, Turn

# Written by the tools when they cannot reach their service (agent/tools): the run is offline for that tool.
OFFLINE_MARKERS = ("unavailable", "no network", "ConnectError", "ConnectTimeout", "timed out")


@dataclass
class CaseResult:
    case: Case
    turns: list[Turn] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    memories: list[str] = field(default_factory=list)
    false_memories: list[str] = field(default_factory=list)
    load: float = 0.0

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    @property
    def scored(self) -> Turn | None:
        return self.turns[-1] if self.turns else None


def _tool_ok(turn: Turn, tool: str) -> bool:
    """The expected tool was called and accepted its arguments."""
    called = [call for call in turn.tool_calls if call.get("name") == tool]
    if not called:
        return False
    results = {result.get("id"): str(result.get("content", "")) for result in turn.tool_results}
    return all(
        not results.get(call.get("id"), "").startswith(("Error: invalid arguments", "Error: unknown tool"))
        for call in called
    )


def _offline(turn: Turn) -> bool:
    return any(
        str(result.get("content", "")).startswith("Error")
        and any(m in str(result.get("content")) for m in OFFLINE_MARKERS)
        for result in turn.tool_results
    )


def _common_checks(result: CaseResult) -> None:
    for index, turn in enumerate(result.turns):
        result.checks[f"turn {index + 1}: answered"] = turn.error is None and bool(turn.answer.strip())
        result.checks[f"turn {index + 1}: no tool-call JSON"] = not checks.has_tool_json(turn.answer)


async def run_case(client: EvalClient, memory_client: EvalClient, case: Case) -> CaseResult:
    result = CaseResult(case, load=os.getloadavg()[0])
    if case.kind in ("tool", "chat"):
        turn = await client.say(await client.new_session(case.id), case.messages[0])
        result.turns.append(turn)
        _common_checks(result)
        result.checks["language"] = checks.language_matches(turn.answer, case.lang)
        if case.kind == "chat":
            result.checks["no tool call"] = not turn.tool_calls
            result.checks["expected content"] = checks.contains_any(turn.answer, case.expect_any)
            return result
        assert case.tool is not None
        result.checks[f"called {case.tool} with valid arguments"] = _tool_ok(turn, case.tool)
        if case.number is not None:
            result.checks[f"answer contains {case.number:g}"] = checks.contains_number(turn.answer, case.number)
        elif _offline(turn):
            result.checks["says the service is unreachable"] = checks.says_unreachable(turn.answer)
            if case.tool == "get_weather":
                result.checks["invents no temperature"] = not checks.invents_temperature(turn.answer)
        return result
    if case.kind == "language":
        session = await client.new_session(case.id)
        for message in case.messages:
            result.turns.append(await client.say(session, message))
        _common_checks(result)
        result.checks["second answer in the second language"] = checks.language_matches(
            result.turns[-1].answer, case.lang
        )
        return result
    # Memory cases run on their own account, emptied first, so what is stored is this case's doing.
    await memory_client.settle_memory()
    await memory_client.forget_all()
    session = await memory_client.new_session(case.id)
    for message in case.messages:
        result.turns.append(await memory_client.say(session, message))
    if case.kind == "recall":
        if not case.same_session:
            await memory_client.settle_memory()
            session = await memory_client.new_session(case.id + "-later")
        result.turns.append(await memory_client.say(session, case.question))
    await memory_client.settle_memory()
    result.memories = await memory_client.memories()
    said = [turn.message for turn in result.turns]
    result.false_memories = [m for m in result.memories if not checks.grounded(m, said)]
    _common_checks(result)
    result.checks["language"] = checks.language_matches(result.turns[-1].answer, case.lang)
    result.checks["no false memory"] = not result.false_memories
    if case.kind == "recall":
        result.checks["recalls the fact"] = checks.contains_any(result.turns[-1].answer, case.expect_any)
    else:
        result.checks["stores nothing"] = not result.memories
    return result


@dataclass
class RunSummary:
    results: list[CaseResult]
    main_account_memories: list[str]
    main_account_false: list[str]
    started: float
    finished: float
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float]
    raw_generation_tps: float | None = None
    raw_prompt_tps: float | None = None

    def model(self) -> str:
        for result in self.results:
            for turn in result.turns:
                if turn.model:
                    return turn.model
        return "unknown"


async def run_cases(
    client: EvalClient,
    memory_client: EvalClient,
    cases: Sequence[Case],
    progress: Callable[[CaseResult], None] | None = None,
) -> tuple[list[CaseResult], list[str], list[str]]:
    results = []
    for case in cases:
        result = await run_case(client, memory_client, case)
        results.append(result)
        if progress is not None:
            progress(result)
    # Extraction of the main account's turns may have waited for quiet (chat first): let it finish, then
    # every memory it stored must be grounded in what that account said.
    await client.settle_memory()
    memories = await client.memories()
    said = [turn.message for r in results if r.case.kind in ("tool", "chat", "language") for turn in r.turns]
    return results, memories, [m for m in memories if not checks.grounded(m, said)]


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]


def now() -> float:
    return time.time()
