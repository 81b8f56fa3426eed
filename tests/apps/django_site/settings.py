"""Settings of the test project: production-like (DEBUG off, hosts
restricted, CSRF on), no database."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "iodine-py-tests-only-this-key-protects-nothing-0123456789"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

ROOT_URLCONF = "tests.apps.django_site.urls"
WSGI_APPLICATION = "tests.apps.django_site.wsgi.application"

INSTALLED_APPS = ["django.contrib.staticfiles"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [BASE_DIR / "templates"],
    "APP_DIRS": False,
    "OPTIONS": {},
}]

DATABASES = {}

USE_TZ = True

# collectstatic copies static/ here; the server's -www flag serves the
# parent folder, so /static/... is answered from it without reaching Django.
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = os.environ.get("DJANGO_SITE_STATIC_ROOT") or None
