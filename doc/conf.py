"""Sphinx configuration for skdpgen's documentation (Markdown pages through MyST).

Build with ``python -m pip install sphinx myst-parser numpydoc sphinx-gallery`` and
``python -m sphinx -b html doc doc/_build/html``.  sphinx-gallery is optional: without it the
examples are not rendered, the rest of the site builds.
"""

import importlib.util
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import skdpgen  # noqa: E402

project = "skdpgen"
author = "skdpgen developers"
release = skdpgen.__version__
version = release

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "auto_examples/*.ipynb"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

numpydoc_show_class_members = False
autodoc_typehints = "none"
autodoc_default_options = {"members": False, "inherited-members": False}

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "pandas": ("https://pandas.pydata.org/docs", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "torch": ("https://pytorch.org/docs/stable", None),
}

if importlib.util.find_spec("sphinx_gallery") is not None:
    extensions.append("sphinx_gallery.gen_gallery")
    sphinx_gallery_conf = {
        "examples_dirs": "../examples",
        "gallery_dirs": "auto_examples",
        "filename_pattern": r"/plot_",
        "download_all_examples": False,
    }

html_theme = "alabaster"
