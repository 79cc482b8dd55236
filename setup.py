"""setuptools shim: pyproject.toml holds the metadata; this only wires in the cffi build."""

from setuptools import setup

setup(cffi_modules=["build.py:ffibuilder"])
