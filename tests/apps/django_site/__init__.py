"""A minimal Django project served by iodine-py in tests/frameworks/test_django_site.py.

Run it by hand from the repository root:

    iodine tests.apps.django_site.wsgi:application
"""
