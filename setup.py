"""Build hook for the optional C accelerator; all metadata lives in pyproject.toml.

``rfc6455/_speedups.c`` is compiled when a C compiler is available. If the build
fails the install still succeeds, with a warning, and rfc6455 uses its pure-Python
code (``RFC6455_NO_EXTENSIONS=1`` forces that at run time too). With
``RFC6455_REQUIRE_EXTENSIONS=1`` a failed build fails the install instead: CI sets
it, so that a green run cannot hide a missing accelerator.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

REQUIRED = bool(os.environ.get("RFC6455_REQUIRE_EXTENSIONS"))


class OptionalBuildExt(build_ext):
    """A ``build_ext`` whose failure is reported, then ignored (unless required)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, missing headers, ...
            if REQUIRED:
                raise
            self._skipped(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skipped(exc)

    @staticmethod
    def _skipped(exc: Exception) -> None:
        if REQUIRED:
            raise RuntimeError(
                f"rfc6455: C accelerator not built ({exc}) and RFC6455_REQUIRE_EXTENSIONS is set"
            ) from exc
        print(f"WARNING: rfc6455: C accelerator not built ({exc}); using pure Python",
              file=sys.stderr)


extra_compile_args = [] if os.name == "nt" else ["-O3"]

setup(
    ext_modules=[
        Extension(
            "rfc6455._speedups",
            sources=["rfc6455/_speedups.c"],
            extra_compile_args=extra_compile_args,
            optional=not REQUIRED,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
