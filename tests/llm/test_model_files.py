"""Assembling and verifying the model file, on small stand-in parts (the real file: test_local_model.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from agentserver.llm import model_files
from agentserver.llm.errors import ModelFileError
from agentserver.llm.registry import MODELS, LocalModelFile

PARTS = [b"GGUF" + b"a" * 1000, b"b" * 2000, b"c" * 10]
CONTENT = b"".join(PARTS)


@pytest.fixture
def parts(tmp_path: Path) -> list[Path]:
    paths = []
    for i, data in enumerate(PARTS, 1):
        path = tmp_path / "packages" / f"part{i:02d}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


def spec(sha256: str | None = None, size: int | None = len(CONTENT)) -> LocalModelFile:
    return LocalModelFile(
        filename="tiny.gguf",
        packages=(),
        sha256=sha256 or hashlib.sha256(CONTENT).hexdigest(),
        size=size,
    )


def tamper(path: Path) -> None:
    """Flip one byte and put the mtime back, as a careless copy tool or an attacker might."""
    st = path.stat()
    with path.open("r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


class TestAssemble:
    def test_parts_are_concatenated_in_order_and_verified(self, tmp_path: Path, parts: list[Path]) -> None:
        dest = tmp_path / "models" / "tiny.gguf"
        seen: list[tuple[int, int]] = []

        model_files.assemble(spec(), dest, lambda done, total: seen.append((done, total)), parts=parts)

        assert dest.read_bytes() == CONTENT
        assert seen[-1] == (len(CONTENT), len(CONTENT))
        assert model_files.is_verified(dest, spec())

    def test_sha256_mismatch_is_refused_and_nothing_is_left(self, tmp_path: Path, parts: list[Path]) -> None:
        dest = tmp_path / "models" / "tiny.gguf"

        with pytest.raises(ModelFileError, match="refusing it"):
            model_files.assemble(spec(sha256="0" * 64), dest, parts=parts)

        assert list(dest.parent.iterdir()) == []

    def test_wrong_total_size_is_refused_before_writing(self, tmp_path: Path, parts: list[Path]) -> None:
        dest = tmp_path / "models" / "tiny.gguf"

        with pytest.raises(ModelFileError, match="add up to"):
            model_files.assemble(spec(size=1), dest, parts=parts)

        assert not dest.exists()

    def test_real_part_packages_are_found_in_order(self) -> None:
        local_file = MODELS["qwen2.5-coder-0.5b"].local_file
        assert local_file is not None

        found = model_files.part_files(local_file)

        assert [p.name for p in found] == [f"part0{i}.bin" for i in range(1, 7)]
        assert sum(p.stat().st_size for p in found) == local_file.size

    def test_missing_package_is_a_clear_error(self) -> None:
        missing = LocalModelFile("x.gguf", ("agentserver-no-such-part",), "0" * 64, None)

        with pytest.raises(ModelFileError, match="is not installed"):
            model_files.part_files(missing)


class TestVerify:
    def test_verification_is_remembered(
        self, tmp_path: Path, parts: list[Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        dest = tmp_path / "tiny.gguf"
        model_files.assemble(spec(), dest, parts=parts)

        def no_hashing(*args: object, **kwargs: object) -> str:
            raise AssertionError("hashed again")

        monkeypatch.setattr(model_files, "sha256_of", no_hashing)
        assert model_files.is_verified(dest, spec())

    def test_tampered_file_fails_even_with_its_mtime_restored(self, tmp_path: Path, parts: list[Path]) -> None:
        dest = tmp_path / "tiny.gguf"
        model_files.assemble(spec(), dest, parts=parts)

        tamper(dest)

        assert not model_files.is_verified(dest, spec())

    def test_verify_or_remove_deletes_a_tampered_file(self, tmp_path: Path, parts: list[Path]) -> None:
        dest = tmp_path / "tiny.gguf"
        model_files.assemble(spec(), dest, parts=parts)
        tamper(dest)

        with pytest.raises(ModelFileError, match="refused and deleted"):
            model_files.verify_or_remove(dest, spec())

        assert not dest.exists()
        assert not (tmp_path / "tiny.gguf.verified.json").exists()

    def test_missing_file_is_not_verified(self, tmp_path: Path) -> None:
        assert not model_files.is_verified(tmp_path / "absent.gguf", spec())
