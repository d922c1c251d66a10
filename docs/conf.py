"""Sphinx configuration of nettrim's documentation.

Build (warnings are errors, as in CI):

    pip install ".[docs]"
    sphinx-build -W --keep-going -b html docs docs/_build/html

The API reference and the command-line reference are generated from the installed package
(docstrings, the argparse parser, the engine's default settings), so the package must be
importable: installed, or ``PYTHONPATH=python`` with the compiled module beside it.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))

import nettrim  # noqa: E402  (the version, and a clear error when the package is missing)

project = "nettrim"
author = "the nettrim authors"
copyright = "the nettrim authors, MIT license"
release = nettrim.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",        # the numpydoc-style docstrings of the package
    "sphinx.ext.mathjax",
    "nettrim_docs",               # _ext/nettrim_docs.py: CLI help and the engine's settings, generated
]

exclude_patterns = ["_build", "examples"]
nitpicky = False
root_doc = "index"
default_role = "literal"          # `x` is code, as in the package's docstrings

autodoc_member_order = "bysource"
autodoc_typehints = "none"        # the docstrings state types and shapes themselves
autodoc_default_options = {"show-inheritance": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = False       # types as text: names in them (eps_rel, density) are not references

try:
    import furo  # noqa: F401
    html_theme = "furo"
except ImportError:               # the build stays possible without the theme
    html_theme = "alabaster"
html_title = f"nettrim {release}"
html_static_path = []
