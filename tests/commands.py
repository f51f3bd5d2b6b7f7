"""Running pokazy's command line from the tests, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Long enough for any one command here; a hung command fails its test instead of the run.
HANG_GUARD = 120.0


def pokazy(
    env: dict[str, str], *args: str, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run `python -m streams ARGS` from the project root with exactly this environment."""
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        check=check,
    )
