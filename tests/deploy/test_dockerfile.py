"""deploy/Dockerfile, checked as text (no Docker engine here): multi-stage, slim, non-root, healthcheck."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.deploy.validators import validator

HADOLINT = validator("hadolint")
BUILD_TOOLS = ("gcc", "g++", "make", "build-essential", "cc ", "clang", "apt-get install", "uv ", "pip install")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        return self.all(keyword)[-1]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions per stage, with line continuations joined and comments dropped."""
    logical: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            stages.append(Stage(base=parts[0], name=parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


@pytest.fixture(scope="module")
def dockerfile(deploy_dir: Path) -> str:
    return (deploy_dir / "Dockerfile").read_text()


@pytest.fixture(scope="module")
def stages(dockerfile: str) -> list[Stage]:
    return parse_dockerfile(dockerfile)


def _global_arg(dockerfile: str, name: str) -> str:
    for line in dockerfile.splitlines():
        if line.startswith(f"ARG {name}="):
            return line.split("=", 1)[1]
    raise AssertionError(f"ARG {name} not declared")


def _healthcheck_command(stage: Stage) -> list[str]:
    healthcheck = stage.last("HEALTHCHECK")
    exec_form = healthcheck.split(" CMD ", 1)[1]
    command: list[str] = json.loads(exec_form)
    return command


class TestStages:
    def test_builds_in_one_stage_and_runs_from_another(self, stages: list[Stage]) -> None:
        assert [stage.name for stage in stages] == ["build", "runtime"]

    def test_both_stages_are_python_3_11_slim(self, stages: list[Stage], dockerfile: str) -> None:
        base = _global_arg(dockerfile, "PYTHON_IMAGE")

        assert base.startswith("python:3.11-slim")
        assert {stage.base for stage in stages} == {"${PYTHON_IMAGE}"}

    def test_the_runtime_gets_only_the_virtualenv_from_the_build(self, stages: list[Stage]) -> None:
        runtime = stages[-1]

        assert runtime.all("COPY") == ["--from=build /opt/venv /opt/venv"]

    def test_the_runtime_installs_no_build_tools(self, stages: list[Stage]) -> None:
        runtime = stages[-1]
        commands = " ".join(runtime.all("RUN"))

        assert [tool for tool in BUILD_TOOLS if tool in commands] == []

    def test_dependencies_come_from_the_hashed_lock(self, stages: list[Stage]) -> None:
        install = " ".join(stages[0].all("RUN"))

        assert "--require-hashes" in install
        assert "-c requirements.lock" in install
        assert "--override overrides.txt" in install

    def test_the_local_model_is_opt_in(self, stages: list[Stage]) -> None:
        build = stages[0]

        assert "WITH_LOCAL_MODEL=false" in build.all("ARG")
        assert '"$WITH_LOCAL_MODEL" = "true" ]; then set -- --extra local; fi' in " ".join(build.all("RUN"))

    def test_the_build_context_allows_every_copied_file(self, stages: list[Stage], deploy_dir: Path) -> None:
        allowed = {
            line[1:]
            for line in (deploy_dir / "Dockerfile.dockerignore").read_text().splitlines()
            if line.startswith("!")
        }
        copied = {
            source for args in stages[0].all("COPY") if not args.startswith("--from") for source in args.split()[:-1]
        }

        assert copied <= allowed
        assert all((deploy_dir.parent / source).exists() for source in copied)


class TestRuntime:
    def test_runs_as_a_non_root_user(self, stages: list[Stage]) -> None:
        user = stages[-1].last("USER").split(":")[0]

        assert user not in {"root", "0"}
        assert "useradd --system --uid 10001" in " ".join(stages[-1].all("RUN"))

    def test_serves_on_all_interfaces(self, stages: list[Stage]) -> None:
        runtime = stages[-1]

        command = json.loads(runtime.last("ENTRYPOINT")) + json.loads(runtime.last("CMD"))

        assert command == ["agentserver", "serve", "--host", "0.0.0.0"]

    def test_runs_in_production_mode_with_json_logs(self, stages: list[Stage]) -> None:
        env = " ".join(stages[-1].all("ENV"))

        assert "ENVIRONMENT=production" in env
        assert "LOG_FORMAT=json" in env

    def test_the_healthcheck_uses_the_image_s_python(self, stages: list[Stage]) -> None:
        command = _healthcheck_command(stages[-1])

        assert command[:2] == ["python", "-c"]
        compile(command[2], "<healthcheck>", "exec")


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Unhealthy(_Health):
    status = 503


@pytest.fixture(params=[_Health], ids=["healthy"])
def health_server(request: pytest.FixtureRequest) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


class TestHealthcheckCommand:
    def test_succeeds_when_health_answers(self, stages: list[Stage], health_server: int) -> None:
        code = _healthcheck_command(stages[-1])[2]

        result = subprocess.run(  # noqa: S603 - the healthcheck code is our own Dockerfile's
            [sys.executable, "-c", code], env={"PORT": str(health_server)}, capture_output=True, timeout=30
        )

        assert result.returncode == 0, result.stderr

    @pytest.mark.parametrize("health_server", [_Unhealthy], ids=["unhealthy"], indirect=True)
    def test_fails_when_health_does_not_answer_200(self, stages: list[Stage], health_server: int) -> None:
        code = _healthcheck_command(stages[-1])[2]

        result = subprocess.run(  # noqa: S603 - the healthcheck code is our own Dockerfile's
            [sys.executable, "-c", code], env={"PORT": str(health_server)}, capture_output=True, timeout=30
        )

        assert result.returncode == 1
        assert b"HTTP Error 503" in result.stderr


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed (scripts/ensure-deploy-validators.sh)")
def test_hadolint_accepts_the_dockerfile(deploy_dir: Path) -> None:
    assert HADOLINT is not None
    result = subprocess.run(  # noqa: S603 - the linter on our own file
        [HADOLINT, "--no-color", "Dockerfile"], cwd=deploy_dir, capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_base_is_swappable_for_a_local_one() -> None:
    # scripts/ci-image.sh builds on a debootstrap base (no registry here): nothing may assume python:*'s paths.
    text = (Path(__file__).resolve().parents[2] / "deploy" / "Dockerfile").read_text()

    assert "/usr/local/bin/python" not in text
    assert "uv venv --python python3.11 /opt/venv" in text


def test_parser_joins_continuations_and_splits_stages() -> None:
    stages = parse_dockerfile("FROM a AS one\nRUN x \\\n    y\n# comment\nFROM b\nUSER 1\n")

    assert [(s.base, s.name) for s in stages] == [("a", "one"), ("b", None)]
    assert stages[0].all("RUN") == ["x  y"]
    assert stages[1].last("USER") == "1"
