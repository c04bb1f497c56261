"""Long-term memory: mem0 on pgvector, with offline ONNX embeddings.

mem0 reads `MEM0_TELEMETRY` and `MEM0_DIR` once, when it is first imported: with telemetry on it builds
a PostHog client and fetches a notice config from GitHub on first use. So this package pins both here,
and every module that imports mem0 lives inside this package (its `__init__` runs first). Importing
mem0 anywhere else first would be a bug; `agentserver.memory.backend` refuses to start if it happened.
"""

from __future__ import annotations

import os
from pathlib import Path

# Forced, not defaulted: there is no supported way to turn mem0's phone-home back on.
os.environ["MEM0_TELEMETRY"] = "False"
# mem0 only creates this directory at import (telemetry is off and its SQLite history store is replaced,
# see backend.py), so the environment's data dir is enough; settings are not built at import time.
os.environ.setdefault(
    "MEM0_DIR", str(Path(os.environ.get("AGENTSERVER_DATA_DIR") or ".data").expanduser().resolve() / "mem0")
)
