"""The `fad` logger: console on every run, `log.txt` in OUTPUT_DIR on the main process.

A run that has not passed all its checks yet keeps its records in memory (`defer=True`):
`open_log_file` writes them to the file once it may write, so a refused run leaves no log.txt
behind (nor overwrites the one of an earlier run).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(message)s"
MAX_PENDING_RECORDS = 10_000


class _Pending(logging.Handler):
    """Keeps records until the log file may be written (the first MAX_PENDING_RECORDS)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < MAX_PENDING_RECORDS:
            self.records.append(record)


def setup_logger(
    output_dir: str | Path | None, rank: int = 0, filename: str = "log.txt", *, defer: bool = False
) -> logging.Logger:
    """Console logging (main process); the file `output_dir/filename` too, at once or, with
    `defer`, when `open_log_file` is called."""
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
    if output_dir and defer:
        log.addHandler(_Pending())
    elif output_dir:
        open_log_file(log, output_dir, filename)
    return log


def open_log_file(log: logging.Logger, output_dir: str | Path, filename: str) -> None:
    """Log to `output_dir/filename` from now on, starting with the records kept so far."""
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    file = logging.FileHandler(Path(output_dir) / filename, encoding="utf-8")
    file.setFormatter(logging.Formatter(FORMAT))
    for handler in [h for h in log.handlers if isinstance(h, _Pending)]:
        log.removeHandler(handler)
        for record in handler.records:
            file.handle(record)
    log.addHandler(file)
