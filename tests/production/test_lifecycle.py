"""Iodine.on_state hooks run at the documented points, in order, with
workers on and off (iodine_py/hooks.py states the order)."""
import re

import pytest

HOOK = re.compile(r"^hook (\w+) (\d+)$")


def events_by_pid(srv):
    out = {}
    for line in srv.stderr_lines:
        m = HOOK.match(line.strip())
        if m:
            out.setdefault(int(m.group(2)), []).append(m.group(1))
    return out


def test_hooks_without_workers(run_server):
    srv = run_server("lifecycle")
    srv.allow_tracebacks = True  # the failing hook is logged on purpose
    assert srv.get("/").status == 200
    assert srv.stop() == 0
    pid = srv.proc.pid
    assert events_by_pid(srv) == {pid: ["pre_start", "enter_master", "enter_child",
                                        "start_shutdown", "on_finish"]}
    assert "a hook that fails" in srv.stderr


def test_hooks_of_an_app_imported_by_each_worker_run_in_the_workers(run_server):
    srv = run_server("lifecycle", "-w", "2")
    srv.allow_tracebacks = True
    srv.wait_for_lines("hook enter_child", 2, timeout=10)
    assert srv.stop() == 0
    seen = events_by_pid(srv)
    assert srv.proc.pid not in seen  # the master never imported the app
    assert len(seen) == 2, seen
    for pid, events in seen.items():
        assert events == ["after_fork", "enter_child", "start_shutdown", "on_finish"], (pid, events)


def test_hooks_with_workers(run_server):
    srv = run_server("lifecycle", "-w", "2", "--preload")
    srv.allow_tracebacks = True
    srv.wait_for_lines("hook enter_child", 2, timeout=10)
    assert srv.get("/").status == 200
    assert srv.stop() == 0
    seen = events_by_pid(srv)
    master = srv.proc.pid
    assert seen.pop(master) == ["pre_start", "before_fork", "after_fork", "before_fork",
                                "after_fork", "enter_master", "start_shutdown", "on_finish"]
    assert len(seen) == 2, seen  # two workers
    for pid, events in seen.items():
        assert events == ["after_fork", "enter_child", "start_shutdown", "on_finish"], (pid, events)
    assert srv.stderr.count("RuntimeError: a hook that fails") == 2  # once per worker


def test_unknown_state_is_refused():
    from iodine_py import Iodine

    with pytest.raises(ValueError, match="unknown state 'on_start'"):
        Iodine.on_state("on_start", lambda: None)
    with pytest.raises(TypeError):
        Iodine.on_state("pre_start", None)
