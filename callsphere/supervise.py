"""``python -m callsphere.supervise [Procfile]``: run every process of the Procfile and restart one that dies.

honcho (``make run`` before) stops every process as soon as one exits: a Celery worker that died on a broker
error took web, beat and the other worker down with it, and nothing came back. Here each process is watched on
its own: when one exits it is started again after a backoff (1 s, doubling to ``MAX_BACKOFF``; reset once it
has run ``STABLE_AFTER`` seconds), while the others keep running. SIGINT / SIGTERM stop everything (SIGTERM to
each process group, SIGKILL after ``STOP_TIMEOUT``). Output lines are prefixed with the process name, as
honcho did. The Procfile is parsed by honcho's parser; commands run under ``sh -c`` (``${VAR:-default}``).
In production the same role is the platform's (compose ``restart: unless-stopped``, systemd, Kubernetes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0
STOP_TIMEOUT = 10.0


@dataclass
class Child:
    name: str
    command: str
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    backoff: float = 1.0
    restart_at: float | None = None
    starts: int = field(default=0)


class Supervisor:
    def __init__(self, processes: dict[str, str], *, env: dict[str, str] | None = None, out=None):
        self.children = [Child(name, command) for name, command in processes.items()]
        self.env = env if env is not None else dict(os.environ)
        self.out = out or sys.stdout
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._width = max((len(c.name) for c in self.children), default=0)

    def log(self, name: str, line: str) -> None:
        with self._lock:
            self.out.write(f"{time.strftime('%H:%M:%S')} {name.ljust(self._width)} | {line.rstrip()}\n")
            self.out.flush()

    def _pump(self, child: Child, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            self.log(child.name, raw.decode("utf-8", "replace"))

    def start(self, child: Child) -> None:
        child.proc = subprocess.Popen(
            ["/bin/sh", "-c", child.command],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops the command's children too
        )
        child.started_at, child.restart_at = time.monotonic(), None
        child.starts += 1
        self.log("supervise", f"{child.name} started (pid {child.proc.pid})")
        threading.Thread(target=self._pump, args=(child, child.proc), daemon=True).start()

    def tick(self) -> None:
        """Notice exited children and (re)start those whose backoff has passed."""
        now = time.monotonic()
        for child in self.children:
            if child.proc is not None and child.restart_at is None and (code := child.proc.poll()) is not None:
                if now - child.started_at >= STABLE_AFTER:
                    child.backoff = 1.0
                child.restart_at = now + child.backoff
                self.log("supervise", f"{child.name} exited with code {code}; restarting in {child.backoff:.0f} s")
                child.backoff = min(MAX_BACKOFF, child.backoff * 2)
            if child.restart_at is not None and now >= child.restart_at and not self.stopping.is_set():
                self.start(child)

    def run(self, poll: float = 0.2) -> int:
        for child in self.children:
            self.start(child)
        while not self.stopping.wait(poll):
            self.tick()
        self.stop_all()
        return 0

    def stop_all(self) -> None:
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(5)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def read_procfile(path: Path) -> dict[str, str]:
    from honcho.environ import parse_procfile

    return dict(parse_procfile(path.read_text()).processes)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    supervisor = Supervisor(read_procfile(Path(args[0] if args else "Procfile")))

    def stop(signum, frame):
        supervisor.log("supervise", f"signal {signum}: stopping every process")
        supervisor.stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    return supervisor.run()


if __name__ == "__main__":
    raise SystemExit(main())
