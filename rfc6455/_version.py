"""The package version, in one place: ``rfc6455.__version__`` and the wheel's metadata.

pyproject.toml reads it (``[tool.setuptools.dynamic]``) without importing the package, so
this module holds a plain string literal and nothing else.
"""

__version__ = "0.1.0"
