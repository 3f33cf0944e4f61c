"""Small helpers shared by tests: running the real CLI in a subprocess."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass


@dataclass
class Run:
    code: int
    out: str
    err: str


def cli(*args: str, cwd=None, timeout: int = 300) -> Run:
    """Run `prosector ARGS` as a user would, in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-m", "prosector", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def assert_clean_failure(run: Run, *fragments: str, code: int = 2) -> None:
    """One readable error line with the expected content, the right exit code, no traceback."""
    assert run.code == code, (run.code, run.out, run.err)
    assert "Traceback" not in run.err and "Traceback" not in run.out, run.err
    lines = [line for line in run.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, run.err
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), (fragment, lines[0])
