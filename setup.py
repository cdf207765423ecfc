"""Builds the compiled record codec (odradek/records/_fast.pyx) with `pip install`.

Optional by design: without a C compiler (or if the build fails for any reason) the
install still succeeds, and odradek.records runs its pure-Python codec instead. The rest
of the project's metadata is in pyproject.toml."""

from __future__ import annotations

import sys
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing: the extension is only a fast path."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # a missing compiler surfaces as several error types
            self._skip(exc)

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skip(exc)

    @staticmethod
    def _skip(exc: Exception) -> None:
        print(f"warning: odradek.records._fast not built ({exc}); "
              "the pure-Python record codec will be used", file=sys.stderr)


def _extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("warning: Cython is missing; the pure-Python record codec will be used",
              file=sys.stderr)
        return []
    ext = Extension("odradek.records._fast", ["odradek/records/_fast.pyx"],
                    extra_compile_args=["-O2"])
    try:
        return list(cythonize([ext], language_level=3, quiet=True))
    except Exception as exc:
        OptionalBuildExt._skip(exc)
        return []


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
