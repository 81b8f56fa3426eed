"""Build hook: setuptools compiles the C core (ext/) through cffi_modules.

Metadata lives in pyproject.toml; this file exists only because
``cffi_modules`` has no pyproject.toml spelling yet.
"""
from setuptools import setup

setup(cffi_modules=["iodine_py/_build.py:ffibuilder"])
