"""Generated data sets for the benchmarks, made once per size and seed under a work directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def generate(accounts: int, root: Path, seed: int) -> Path:
    """The data directory for ``accounts`` (truth beside it), generated in a subprocess so that
    the generator's memory never counts towards a benchmark's peak."""
    out = root / f"data-{accounts}"
    if not (out / "accounts.parquet").exists() and not (out / "accounts.csv").exists():
        code = (
            "import sys; from pathlib import Path; from ringscope.synth.generate import generate; "
            "generate(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))"
        )
        subprocess.run(
            [sys.executable, "-c", code, str(out), str(root / f"truth-{accounts}"),
             str(accounts), str(seed)],
            check=True, cwd=REPO,
        )  # fmt: skip
    return out
