"""A required secret that is missing is one line and exit 2, also under ``python -O``.

Asserts vanish under ``-O``: the check must not be one. Each service runs as a real
process, with its secrets taken out of the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("module", "args", "env", "missing"),
    [
        ("registry", ["--listen", "127.0.0.1:0"], {}, "EV_PROVISIONING_TOKEN"),
        ("central", ["--no-console"], {}, "EV_OPERATOR_TOKEN"),
        (
            "weather",
            ["--provider", "openweather", "--no-menu"],
            {"EV_WEATHER_TOKEN": "weather-token"},
            "EV_OPENWEATHER_API_KEY",
        ),
    ],
)
def test_a_missing_secret_is_one_line_and_exit_2_even_with_python_O(
    module: str, args: list[str], env: dict[str, str], missing: str, tmp_path: Path
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EV_")}
    done = subprocess.run(
        [sys.executable, "-O", "-m", module, "--data-dir", str(tmp_path), *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    prog = f"ev-{module}"
    assert done.stderr.splitlines() == [
        f"{prog}: error: {missing}: not set (set {missing} or {missing}_FILE)"
    ]
    assert done.stdout == ""
