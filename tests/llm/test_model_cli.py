"""`agentserver model pull` output on small stand-in parts, and the embedded model without its runtime."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentserver.config import LLMProvider, Settings, get_settings
from agentserver.llm import cli as model_cli
from agentserver.llm import local, model_files, registry
from agentserver.llm.errors import LLMConfigurationError
from agentserver.llm.registry import LocalModelFile, ModelInfo

CONTENT = b"GGUF" + b"x" * 20_000
TINY = ModelInfo(
    "tiny",
    LLMProvider.local,
    2048,
    local_file=LocalModelFile("tiny.gguf", (), hashlib.sha256(CONTENT).hexdigest(), len(CONTENT)),
)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    part = tmp_path / "part1.bin"
    part.write_bytes(CONTENT)
    monkeypatch.setattr(registry, "lookup", lambda name: TINY if name == "tiny" else None)
    monkeypatch.setattr(model_files, "part_files", lambda spec: [part])
    monkeypatch.setenv("AGENTSERVER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def _pull() -> list[str]:
    result = CliRunner().invoke(model_cli.model_app, ["pull", "tiny"])
    assert result.exit_code == 0, result.output
    return [line for line in result.output.splitlines() if line.strip()]


class TestPull:
    def test_assembles_with_progress_then_reports_size_and_rate(self, data_dir: Path) -> None:
        lines = _pull()
        path = data_dir / "models" / "tiny.gguf"

        assert lines[0].startswith("assembling tiny.gguf")
        assert "/s" in lines[0]
        assert "?" not in lines[0]
        assert lines[-1].startswith("tiny: assembled and verified (20.0 kB at ")
        assert lines[-1].endswith(f"/s; sha256 {TINY.local_file.sha256}) at {path}")  # type: ignore[union-attr]
        assert path.read_bytes() == CONTENT

    def test_a_recorded_check_prints_only_the_result(self, data_dir: Path) -> None:
        _pull()

        lines = _pull()

        path = data_dir / "models" / "tiny.gguf"
        assert lines == [
            f"tiny: installed and verified at {path} (sha256 checked by an earlier pull; the file is unchanged since)"
        ]

    def test_hashing_shows_its_progress_with_a_rate_before_the_result(self, data_dir: Path) -> None:
        _pull()
        (data_dir / "models" / "tiny.gguf.verified.json").unlink()

        lines = _pull()

        assert lines[0].startswith("verifying tiny.gguf")
        assert "/s" in lines[0]
        assert "?" not in lines[0]
        assert lines[-1].startswith("tiny: installed; sha256 verified (20.0 kB hashed at ")


class TestMissingRuntime:
    async def test_starting_the_embedded_model_without_xllamacpp_says_what_to_do(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "xllamacpp", None)  # as in an image built without the `local` extra

        with pytest.raises(LLMConfigurationError) as raised:
            await local.LocalModelServer.start(Settings(_env_file=None, agentserver_data_dir=tmp_path), TINY)

        assert str(raised.value) == local.MISSING_RUNTIME
        assert not (tmp_path / "models").exists()  # refused before assembling anything
