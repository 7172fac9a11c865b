"""`nlviz serve`: start the Streamlit app (app.py at the project root)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from . import CommandError

APP = Path(__file__).resolve().parents[2] / "app.py"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on (default: this machine only)")


def main(args: argparse.Namespace) -> int:
    if not APP.exists():
        raise CommandError(f"app.py not found at {APP}: `nlviz serve` runs from a source checkout")
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(args.port),
           "--server.address", args.address, "--browser.gatherUsageStats", "false"]
    return subprocess.call(cmd)
