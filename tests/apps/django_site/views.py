import sys

from django.http import HttpResponse
from django.shortcuts import render

import iodine_py


def say(line):
    sys.stderr.write(f"django-site {line}\n")
    sys.stderr.flush()


def index(request):
    return HttpResponse("django index", content_type="text/plain")


def form(request):
    """GET: a form carrying the CSRF token; POST (the middleware checked the
    token first): a greeting."""
    if request.method == "POST":
        return HttpResponse(f"thanks, {request.POST.get('name', '')}", content_type="text/plain")
    return render(request, "form.html")


def page(request):
    return render(request, "page.html")


class Shout:
    """Answers each text message upper-cased; knows who asked."""

    def on_open(self, client):
        say(f"ws-open {client.env['PATH_INFO']}")

    def on_message(self, client, data):
        client.write(data.upper() if isinstance(data, str) else data)

    def on_close(self, client):
        say("ws-close")


def ws(request):
    return iodine_py.upgrade(request, Shout(), protocols=("websocket",))
