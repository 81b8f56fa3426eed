"""Iodine.run / run_after / run_every: when they fire, how often, cancel,
from any thread, exceptions logged while the loop goes on, with workers."""
import re

FIRE = re.compile(r"^timer (?P<tag>\S+) (?P<n>\d+) \+(?P<ms>\d+) pid (?P<pid>\d+)")


def fired(srv, tag):
    return [m for m in map(FIRE.match, srv.stderr_lines) if m and m.group("tag") == tag]


def test_run_fires_on_the_next_turn(run_server):
    srv = run_server("timers")
    assert srv.get("/run?tag=r").status == 200
    m = srv.wait_for_stderr(re.compile(r"^timer r 1 "), timeout=5)
    assert int(FIRE.match(m.string).group("ms")) < 500


def test_run_after_waits_then_fires_once(run_server):
    srv = run_server("timers")
    srv.get("/after?tag=a&ms=300")
    m = FIRE.match(srv.wait_for_stderr(re.compile(r"^timer a 1 "), timeout=5).string)
    assert 280 <= int(m.group("ms")) < 3000, m.string
    # once: a later, longer timer fires and `a` has still fired only once
    srv.get("/after?tag=b&ms=200")
    srv.wait_for_stderr(re.compile(r"^timer b 1 "), timeout=5)
    assert len(fired(srv, "a")) == 1


def test_run_every_repeats_the_given_number_of_times(run_server):
    srv = run_server("timers")
    srv.get("/every?tag=e&ms=30&reps=4")
    srv.wait_for_lines(re.compile(r"^timer e \d+ "), 4, timeout=5)
    srv.get("/after?tag=later&ms=300")  # well after a fifth firing would be due
    srv.wait_for_stderr(re.compile(r"^timer later 1 "), timeout=5)
    runs = fired(srv, "e")
    assert [int(m.group("n")) for m in runs] == [1, 2, 3, 4]
    times = [int(m.group("ms")) for m in runs]
    assert times == sorted(times) and times[-1] >= 4 * 30 - 5, times


def test_cancel_stops_a_repeating_timer(run_server):
    srv = run_server("timers")
    srv.get("/every?tag=c&ms=20&reps=0")
    srv.wait_for_lines(re.compile(r"^timer c \d+ "), 3, timeout=5)
    srv.get("/cancel?tag=c")
    count = len(fired(srv, "c"))
    srv.get("/after?tag=fence&ms=300")
    srv.wait_for_stderr(re.compile(r"^timer fence 1 "), timeout=5)
    # at most one firing was already on its way when cancel ran
    assert len(fired(srv, "c")) <= count + 1


def test_timers_from_another_thread_and_with_app_threads(run_server):
    srv = run_server("timers", "-t", "3")
    srv.get("/thread?tag=th&ms=50")
    srv.wait_for_stderr(re.compile(r"^timer th 1 "), timeout=5)


def test_a_failing_timer_is_logged_and_the_loop_goes_on(run_server):
    srv = run_server("timers")
    srv.allow_tracebacks = True
    srv.get("/boom?ms=10")
    srv.wait_for_stderr("RuntimeError: a timer that fails", timeout=5)
    srv.wait_for_stderr(re.compile(r"^timer after-boom 1 "), timeout=5)
    srv.assert_alive()


def test_timers_set_before_start_run_in_every_worker(run_server):
    srv = run_server("timers", "-w", "2")
    runs = srv.wait_for_lines(re.compile(r"^timer before-start 1 "), 2, timeout=10)
    pids = {FIRE.match(m.string).group("pid") for m in runs}
    assert len(pids) == 2, [m.string for m in runs]
    assert str(srv.proc.pid) not in pids  # the master keeps no timers


def test_timer_before_start_in_a_single_process(run_server):
    srv = run_server("timers")
    srv.wait_for_stderr(re.compile(r"^timer before-start 1 "), timeout=5)
