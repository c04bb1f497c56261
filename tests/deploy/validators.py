"""Where the deploy schema validators are: .tools/validators (scripts/ensure-deploy-validators.sh), else PATH."""

from __future__ import annotations

import shutil
from pathlib import Path

VALIDATORS_BIN = Path(__file__).resolve().parents[2] / ".tools" / "validators" / "bin"


def validator(name: str) -> str | None:
    """The validator's executable, or None when it is not installed."""
    local = VALIDATORS_BIN / name
    return str(local) if local.is_file() else shutil.which(name)
