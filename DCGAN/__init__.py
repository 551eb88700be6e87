from pathlib import Path

RUNS = Path(__file__).resolve().parent / "runs"  # script defaults, whatever the working directory
