"""py-spy on the service processes while a scenario runs, and a reader of what it recorded.

    python -m bench --only e2e --py-spy sync-core,erp-connector     # records var/bench/<run>/profiles/*.txt
    python -m bench.profiling var/bench/<run>/profiles/e2e-sync-core.txt [--top 40] [--grep engine]

Recordings are py-spy's raw (collapsed) stacks. Samples whose innermost frame is a known wait (the
event loop's poll, an idle aiosqlite or thread-pool worker) are dropped: what remains is where the
process was busy. Percentages are of busy samples, across all threads.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

IDLE_LEAVES = (
    "aiosqlite/core.py:59)",  # worker thread waiting for the next statement
    "threading.py:320)",
    "threading.py:327)",
    "threading.py:331)",
    "concurrent/futures/thread.py:81)",
    "asyncio/runners.py:118)",  # the event loop's poll (uvloop runs it in C)
    "queue.py:171)",
    "queue.py:180)",
)
_FRAME = re.compile(r"(.*) \((.*?):(\d+)\)$")


def py_spy() -> str | None:
    return shutil.which("py-spy") or (str(p) if (p := Path(".venv/bin/py-spy")).exists() else None)


class Recorder:
    """`py-spy record` attached to processes by pid (needs ptrace rights; root in the dev container)."""

    def __init__(self, out_dir: Path, rate: int = 200) -> None:
        self.out_dir = out_dir
        self.rate = rate
        self.procs: list[subprocess.Popen[bytes]] = []
        self.files: list[Path] = []

    def start(self, label: str, pids: dict[str, int]) -> None:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy is not installed (it is in the dev extra: make install)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            path = self.out_dir / f"{label}-{name}.txt"
            self.files.append(path)
            self.procs.append(
                subprocess.Popen(
                    [
                        exe,
                        "record",
                        "--pid",
                        str(pid),
                        "--rate",
                        str(self.rate),
                        "--format",
                        "raw",
                        "--output",
                        str(path),
                        "--nonblocking",
                        "--subprocesses",  # sync-core's worker processes (ADR 0055)
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def stop(self) -> list[Path]:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()
        files, self.files = [p for p in self.files if p.exists()], []
        return files


def _short(frame: str) -> str:
    """`func (…/site-packages/pkg/mod.py:12)` → `func (pkg/mod.py)`; own code keeps its package folder."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    fn, file, _ = m.groups()
    file = file.split("site-packages/")[-1] if "site-packages/" in file else "/".join(Path(file).parts[-2:])
    return f"{fn} ({file})"


def summarize(path: Path, *, top: int = 40, grep: str | None = None) -> dict[str, Any]:
    """Busy samples of a raw py-spy recording: inclusive and self shares per function."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    busy = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if frames[-1].endswith(IDLE_LEAVES):
            idle += n
            continue
        short = [_short(f) for f in frames]
        if grep and not any(grep in f for f in short):
            continue
        busy += n
        for f in set(short):
            inclusive[f] += n
        own[short[-1]] += n

    def share(counter: Counter[str]) -> list[tuple[float, str]]:
        return [(round(100 * n / max(busy, 1), 1), f) for f, n in counter.most_common(top)]

    return {"busy_samples": busy, "idle_samples": idle, "inclusive": share(inclusive), "self": share(own)}


def main() -> None:
    parser = argparse.ArgumentParser(description="Summarize a raw py-spy recording (busy samples only)")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--grep", help="only stacks with a frame containing this text")
    args = parser.parse_args()
    for path in args.files:
        s = summarize(path, top=args.top, grep=args.grep)
        print(f"== {path}  ({s['busy_samples']} busy samples, {s['idle_samples']} idle)")
        print("-- inclusive")
        for pct, f in s["inclusive"]:
            print(f"{pct:6.1f}%  {f}")
        print("-- self")
        for pct, f in s["self"][:25]:
            print(f"{pct:6.1f}%  {f}")


if __name__ == "__main__":
    main()
