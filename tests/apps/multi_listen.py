"""Several Iodine.listen calls in one process:

    python tests/apps/multi_listen.py UNIX_SOCKET_PATH

serves `hello` on 127.0.0.1 (free port), `whoami` on ::1 (free port) when
IPv6 loopback exists, and `hello.other` on the Unix socket."""
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from iodine_py import Iodine  # noqa: E402
from tests.apps import hello, whoami  # noqa: E402


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


if __name__ == "__main__":
    Iodine.listen(hello.app, port=0, address="127.0.0.1")
    if has_ipv6():
        Iodine.listen(whoami.app, port=0, address="::1")
    Iodine.listen(hello.other, address="unix:" + sys.argv[1])
    Iodine.start()
