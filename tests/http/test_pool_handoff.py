"""The application pool's hand-off (dispatch.c, iodine_py/_fast.c's mode 1):
requests that the loop reads together, one per connection, must each get
a thread of their own while the others block; any batching of the pool's
wake-ups (one per loop turn instead of one per post) must keep that, or
they queue behind the first. Pipelined order and one event at a time per
connection with -t 4: tests/http/test_fast_path.py."""
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
