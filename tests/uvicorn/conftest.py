"""uvicorn 0.55, which these tests run (pinned in the test extra), needs Python 3.11."""

from __future__ import annotations

import sys

collect_ignore_glob = ["test_*.py"] if sys.version_info < (3, 11) else []
