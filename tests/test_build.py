"""setup.py: a failed accelerator build is an error when required, else a warning."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _build(tmp_path: Path, required: bool) -> subprocess.CompletedProcess[str]:
    """Run ``setup.py build_ext`` on a copy of the sources with a compiler that fails."""
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "rfc6455").mkdir()
    shutil.copy(ROOT / "rfc6455" / "_speedups.c", tmp_path / "rfc6455" / "_speedups.c")
    (tmp_path / "rfc6455" / "__init__.py").write_text("")
    # pyproject reads the version from here (one source for it).
    shutil.copy(ROOT / "rfc6455" / "_version.py", tmp_path / "rfc6455" / "_version.py")
    env = {key: value for key, value in os.environ.items()
           if key not in ("RFC6455_REQUIRE_EXTENSIONS", "RFC6455_NO_EXTENSIONS")}
    env["CC"] = "false"  # every compilation fails, as without a compiler
    if required:
        env["RFC6455_REQUIRE_EXTENSIONS"] = "1"
    return subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(os.name == "nt", reason="CC=false is a POSIX command")
def test_failed_build_is_an_error_when_extensions_are_required(tmp_path: Path) -> None:
    result = _build(tmp_path, required=True)
    assert result.returncode != 0
    assert "RFC6455_REQUIRE_EXTENSIONS" in result.stderr


@pytest.mark.skipif(os.name == "nt", reason="CC=false is a POSIX command")
def test_failed_build_falls_back_with_a_warning(tmp_path: Path) -> None:
    result = _build(tmp_path, required=False)
    assert result.returncode == 0, result.stderr
    assert "WARNING: rfc6455: C accelerator not built" in result.stderr
    assert not list((tmp_path / "rfc6455").glob("_speedups*.so"))
