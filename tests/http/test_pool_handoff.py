"""The application pool's hand-off (dispatch.c's deferred wake-ups,
iodine_py/_fast.c's mode 1): the loop thread wakes the pool's threads once
per turn instead of once per post, and a thread takes events only while
it holds the GIL. Neither may cost concurrency: requests that arrive
together, one per connection, must each get a thread of their own while
the others block (a single wake-up per turn would leave them queued behind
the first), and answers still leave in order (tests/http/test_fast_path.py
checks pipelined order and one event at a time per connection with -t 4)."""
from __future__ import annotations

PARKED = 4


def test_requests_arriving_together_each_wake_a_pool_thread(run_server):
    srv = run_server("gates", "-t", str(PARKED + 1))
    mark = srv.stderr_mark()
    conns = [srv.connect(timeout=15) for _ in range(PARKED)]
    try:
        # back to back, so that the loop reads most of them in one turn
        for i, c in enumerate(conns):
            c.request("GET", f"/wait/p{i}?timeout=10")
        for i in range(PARKED):
            # every one parks while the others still block: each got a
            # thread (bounded: the gates give up after 10 s)
            srv.wait_for_stderr(f"gate-waiting p{i}", timeout=5, start=mark)
        for i in range(PARKED):
            assert srv.get(f"/release/p{i}", timeout=5).status == 200
        for c in conns:
            assert c.read_response(timeout=5).body == b"released"
    finally:
        for c in conns:
            c.close()


def test_pool_keeps_answering_after_its_threads_sleep(run_server):
    """Rounds of requests with the pool idle in between: each round's
    events are posted by the loop thread and must wake a sleeping thread
    (no other I/O comes to flush a wake-up left owed)."""
    srv = run_server("gates", "-t", "4")
    with srv.connect(timeout=10) as c:
        for i in range(20):
            c.request("GET", f"/round-{i}")
            r = c.read_response(timeout=5)
            assert r.status == 200 and r.body == b"ok", (i, r)
