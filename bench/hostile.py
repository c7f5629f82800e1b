"""A hostile run: many bad inputs and faults thrown at the `fad` command line, each in a fresh
folder and its own process, and how each one ended.

Every case (`bench/hostile_cases.py`) says what a careful program does with it: refuse it with a
one-line error (exit code 2), or finish (exit code 0, e.g. skipping a bad image and counting it).
Beyond the exit code the runner checks, for every case, that

- no traceback reaches the user (stderr holds no "Traceback");
- nothing hangs (each process is killed after `--timeout` seconds);
- no data is lost: the files a case protects (inputs, an earlier run's config and log, the
  user's own `*.tmp` files, checkpoints) are byte-identical afterwards;
- the case's own check holds (e.g. a skipped image is counted, a file has the umask's mode).

    python bench/hostile.py                 # every case, 2 at a time
    python bench/hostile.py -k predict -j 1 # the cases whose name or group holds "predict"

Prints a table of the outcomes and exits 1 when any case ended otherwise than expected.
Takes about 10 minutes on 2 CPU cores (most of it torch's import in ~130 processes).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostile_cases import CASES, Case, Workspace  # noqa: E402


@dataclass
class Outcome:
    case: Case
    status: str  # "as expected" or what went wrong
    rc: int | None
    seconds: float
    detail: str = ""
    stderr: str = field(default="", repr=False)


def _hashes(paths: list[Path]) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            try:
                found[str(file)] = hashlib.sha256(file.read_bytes()).hexdigest()
            except OSError:
                found[str(file)] = "unreadable"
    return found


def run_case(case: Case, root: Path, timeout: float) -> Outcome:
    """Build the case in a fresh folder, run it, and judge how it ended."""
    folder = Path(tempfile.mkdtemp(prefix=f"{case.name}-", dir=root))
    try:
        spec = case.build(folder)
    except Exception as exc:  # noqa: BLE001 - a broken case is reported, not fatal
        return Outcome(case, "case failed to build", None, 0.0, f"{type(exc).__name__}: {exc}")
    before = _hashes(spec.protect)
    env = {**os.environ, "OMP_NUM_THREADS": "1", **spec.env}
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, *spec.argv],
            cwd=spec.cwd or folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=(lambda: os.umask(spec.umask)) if spec.umask is not None else None,
        )
        rc, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        rc, stdout, stderr = None, str(exc.stdout or ""), str(exc.stderr or "")
    finally:
        seconds = time.perf_counter() - start
        for cleanup in spec.cleanups:
            cleanup()
    status, detail = _judge(spec, rc, stdout, stderr, before)
    return Outcome(case, status, rc, seconds, detail, stderr)


def _judge(spec, rc, stdout: str, stderr: str, before: dict[str, str]) -> tuple[str, str]:
    if rc is None:
        return "hang", "killed after the timeout"
    if "Traceback" in stderr:
        return "traceback", stderr.strip().splitlines()[-1][:200]
    lost = [p for p, h in before.items() if _hashes([Path(p)]).get(p) != h]
    if lost:
        return "data loss", f"changed or removed: {lost[0]}"
    expected = 2 if spec.expect == "error" else 0
    if rc != expected:
        return f"exit {rc}, expected {expected}", (stderr.strip() or stdout.strip())[-200:]
    if spec.expect == "error":
        if stderr.count("\n") != 1 or not stderr.startswith("fad "):
            return "not one line", stderr[:200]
        if spec.message and spec.message not in stderr:
            return "wrong message", stderr.strip()[:200]
    problem = spec.check(stdout + stderr) if spec.check else ""
    if problem:
        return "check failed", problem[:200]
    return "as expected", (stderr.strip() or "")[:160]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="only cases whose name or group holds this")
    parser.add_argument("-j", type=int, default=2, help="cases run at once")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per case")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--shared", type=Path, help="reuse the shared inputs of a kept run")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fad-hostile-"))
    print(f"work folder {root}; preparing the shared inputs ...", flush=True)
    Workspace.prepare(args.shared or root / "shared")
    cases = [c for c in CASES if args.k in c.name or args.k in c.group]
    print(f"{len(cases)} cases, {args.j} at a time, timeout {args.timeout:.0f} s", flush=True)
    with ThreadPoolExecutor(args.j) as pool:
        outcomes = list(pool.map(lambda c: run_case(c, root, args.timeout), cases))
    print("\n| # | group | case | expected | exit | outcome | s | detail |")
    print("|---:|---|---|---|---:|---|---:|---|")
    for i, o in enumerate(outcomes, 1):
        detail = o.detail.replace("|", "/").replace("\n", " ")
        print(
            f"| {i} | {o.case.group} | {o.case.name} | {o.case.expect} | {o.rc} | {o.status} "
            f"| {o.seconds:.0f} | {detail} |"
        )
    counts = Counter(o.status for o in outcomes)
    by_group = Counter((o.case.group, o.case.expect) for o in outcomes)
    print("\noutcomes:", ", ".join(f"{n} {s}" for s, n in counts.most_common()))
    print("cases by group:", ", ".join(f"{g} {e} {n}" for (g, e), n in sorted(by_group.items())))
    if not args.keep:
        subprocess.run(["rm", "-rf", str(root)], check=False)
    return 0 if counts["as expected"] == len(outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
