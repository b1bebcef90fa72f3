"""Lets Beam ship this project to remote workers (--setup_file=./setup.py); metadata lives in
pyproject.toml."""

import setuptools

setuptools.setup()
