"""Fixtures shared by several test files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest


@pytest.fixture
def torchrun() -> Callable[..., subprocess.CompletedProcess]:
    """Run `lt-bench ARGS…` as `processes` DDP processes under torchrun (gloo on CPU, one thread each)."""

    def launch(processes: int, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                   str(processes), "-m", "lt_bench.cli", *args]  # fmt: skip
        environment = {**os.environ, "OMP_NUM_THREADS": "1"}
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)

    return launch
