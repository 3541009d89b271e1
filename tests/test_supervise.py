"""``make run``'s supervisor restarts a process that dies and leaves the others running (honcho stopped all)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.processes import ROOT, wait_for


def _pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_a_dying_process_is_restarted_and_the_others_keep_running(tmp_path):
    procfile = tmp_path / "Procfile"
    crashes, steady = tmp_path / "crashes.pids", tmp_path / "steady.pids"
    procfile.write_text(
        f"crasher: echo $$ >> {crashes}; sleep 0.2; exit 3\nsteady: echo $$ >> {steady}; exec sleep 600\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "callsphere.supervise", str(procfile)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: len(_pids(crashes)) >= 3, timeout=30)  # died twice, started again each time
        assert len(_pids(steady)) == 1  # never stopped, never restarted
        steady_pid = _pids(steady)[0]
        os.kill(steady_pid, 0)  # still alive
        os.kill(steady_pid, signal.SIGKILL)  # kill -9 the long-running one: it comes back too
        wait_for(lambda: len(_pids(steady)) == 2, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0
    assert "crasher exited with code 3; restarting" in out and "steady exited with code -9" in out
    for pid in _pids(steady):
        wait_for(lambda pid=pid: not _alive(pid), timeout=10)  # stopped with the supervisor


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_backoff_doubles_and_resets_after_a_stable_run(monkeypatch):
    from callsphere import supervise

    sup = supervise.Supervisor({"x": "exit 1"}, out=io.StringIO())
    child = sup.children[0]
    clock = [1000.0]
    monkeypatch.setattr(supervise.time, "monotonic", lambda: clock[0])
    sup.start(child)
    child.proc.wait()
    delays = []
    for _ in range(7):
        sup.tick()  # notices the exit
        delays.append(child.restart_at - clock[0])
        clock[0] = child.restart_at
        sup.tick()  # restarts it
        child.proc.wait()
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    clock[0] += supervise.STABLE_AFTER  # it ran a long time before dying: back to 1 s
    sup.tick()
    assert child.restart_at - clock[0] == 1
