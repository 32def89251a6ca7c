"""Packaging: one source for the version, and an editable install a type checker can follow."""

from __future__ import annotations

import configparser
import warnings
from pathlib import Path

import rfc6455
from rfc6455 import _version

ROOT = Path(__file__).resolve().parents[1]


def _pyproject(expand: bool) -> dict[str, object]:
    from setuptools.config.pyprojecttoml import read_configuration  # type: ignore[import-untyped]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "[tool.setuptools] is still beta"
        config: dict[str, object] = read_configuration(ROOT / "pyproject.toml", expand=expand)
    return config


def test_version_has_one_source() -> None:
    """pyproject holds no version of its own: setuptools reads rfc6455/_version.py."""
    raw = _pyproject(expand=False)["project"]
    assert isinstance(raw, dict)
    assert "version" not in raw
    assert "version" in raw["dynamic"]
    expanded = _pyproject(expand=True)["project"]
    assert isinstance(expanded, dict)
    assert expanded["version"] == rfc6455.__version__ == _version.__version__


def test_version_is_not_repeated() -> None:
    """No second copy of the version string in the package or the docs' configuration."""
    version = f'"{rfc6455.__version__}"'
    holders = [path.relative_to(ROOT).as_posix()
               for path in [*ROOT.glob("rfc6455/**/*.py"), ROOT / "docs" / "conf.py",
                            ROOT / "pyproject.toml", ROOT / "setup.py"]
               if version in path.read_text(encoding="utf-8")]
    assert holders == ["rfc6455/_version.py"]


def test_editable_install_is_a_static_path() -> None:
    """`pip install -e .` uses setuptools' strict mode (a .pth path mypy follows)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    assert config.get("editable_wheel", "mode") == "strict"
