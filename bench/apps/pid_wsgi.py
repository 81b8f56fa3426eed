"""Answers with the worker's pid (bench/workers.sh counts who served what)."""
import os

BODY = str(os.getpid()).encode()


def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
