"""The `fad` logger: console on every run, `log.txt` in OUTPUT_DIR on the main process."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(message)s"


def setup_logger(
    output_dir: str | Path | None, rank: int = 0, filename: str = "log.txt"
) -> logging.Logger:
    log = logging.getLogger("fad")
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    if rank != 0:
        log.addHandler(logging.NullHandler())
        return log
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    log.addHandler(console)
    if output_dir:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(Path(output_dir) / filename, encoding="utf-8")
        file.setFormatter(logging.Formatter(FORMAT))
        log.addHandler(file)
    return log
