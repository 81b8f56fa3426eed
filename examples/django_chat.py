"""The chat room as a one-file Django project.   Run: iodine examples/django_chat.py -t 4   then open http://localhost:3000

Needs Django (pip install django). Settings, URLs and views all live in
this file (settings.configure instead of a settings module); the page is
examples/chat.html. /ws and /events accept their connection with
iodine_py.upgrade(request, handler), which returns the HttpResponse Django
wants; the server ignores that response once the connection is upgraded.

Set DJANGO_SECRET_KEY in production; without it a random key is made at
start (fine here: nothing is signed that must outlive the process).
"""
import os
import secrets

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(","),
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ],
    DATABASES={},
    USE_TZ=True,
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import FileResponse, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from django.views.decorators.http import require_GET, require_POST  # noqa: E402

import iodine_py  # noqa: E402
from iodine_py import Iodine  # noqa: E402

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chat.html")
CHANNEL = "chat"


def nickname(request) -> str:
    name = request.GET.get("name", "guest")
    return " ".join(name.split())[:32] or "guest"


class Member:
    """One connected browser, WebSocket or EventSource."""

    def __init__(self, name: str) -> None:
        self.name = name

    def on_open(self, client) -> None:
        client.subscribe(CHANNEL)
        Iodine.publish(CHANNEL, f"{self.name} joined")

    def on_message(self, client, data) -> None:  # WebSocket only
        if isinstance(data, str) and data.strip():
            Iodine.publish(CHANNEL, f"{self.name}: {data[:1000]}")

    def on_close(self, client) -> None:
        Iodine.publish(CHANNEL, f"{self.name} left")


@require_GET
def index(request):
    return FileResponse(open(PAGE, "rb"), content_type="text/html; charset=utf-8")


def ws(request):
    return iodine_py.upgrade(request, Member(nickname(request)), protocols=("websocket",))


def events(request):
    return iodine_py.upgrade(request, Member(nickname(request)), protocols=("sse",))


# The page posts plain text with fetch() and no cookies: there is no
# session for a forged request to ride on, so CSRF protection has nothing
# to protect here (a form in a logged-in site would keep it).
@csrf_exempt
@require_POST
def say(request):
    text = request.read(4096).decode("utf-8", "replace")
    if text.strip():
        Iodine.publish(CHANNEL, f"{nickname(request)}: {text[:1000]}")
    return HttpResponse(status=204)


urlpatterns = [
    path("", index),
    path("ws", ws),
    path("events", events),
    path("say", say),
]

app = get_wsgi_application()
