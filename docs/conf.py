"""Sphinx configuration of the rfc6455 documentation (built with -W in .ci/run)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

import rfc6455

project = "rfc6455"
author = "rfc6455 contributors"
copyright = "2026, rfc6455 contributors"
release = version = rfc6455.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_parser",  # conformance.md and performance.md are Markdown
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
# Offline builds: no intersphinx inventories are fetched unless asked for.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
if os.environ.get("RFC6455_DOCS_INTERSPHINX"):
    intersphinx_mapping["python"] = ("https://docs.python.org/3", None)

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True}
autoclass_content = "class"
myst_heading_anchors = 3

html_theme = "furo"
html_static_path: list[str] = []
html_title = f"rfc6455 {release}"


# conformance.md (written by tests/conformance/runner.py) and performance.md (the
# benchmark tables) are produced by others and may be missing in a checkout: the
# "Quality" toctree lists those that exist, so their absence is not a warning.
_GENERATED = ("conformance", "performance")
_MARKER = "   .. generated pages are inserted here by conf.py\n"


def _insert_generated_pages(app: Sphinx, docname: str, source: list[str]) -> None:
    if docname != "index":
        return
    here = os.path.dirname(os.path.abspath(__file__))
    present = [f"   {name}\n" for name in _GENERATED
               if os.path.exists(os.path.join(here, name + ".md"))]
    source[0] = source[0].replace(_MARKER, "".join(present))


class CliHelp(SphinxDirective):
    """``.. cli-help:: echo``: the subcommand's ``--help``, from the real parser."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        import argparse

        from rfc6455.__main__ import build_parser

        os.environ["COLUMNS"] = "88"  # argparse wraps to the terminal: make it fixed
        parser = build_parser()
        subparsers = next(a for a in parser._actions
                          if isinstance(a, argparse._SubParsersAction))
        command = subparsers.choices[self.arguments[0]]
        text = command.format_help().replace("usage: rfc6455", "usage: python -m rfc6455")
        return [nodes.literal_block(text, text, language="text")]


def _reread_index(app: Sphinx, env: object, added: set[str], changed: set[str],
                  removed: set[str]) -> list[str]:
    # The index's toctree depends on which generated pages exist: re-read it on every
    # build, so an incremental build picks up a page that appeared or vanished.
    return ["index"]


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("source-read", _insert_generated_pages)
    app.connect("env-get-outdated", _reread_index)
    app.add_directive("cli-help", CliHelp)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
