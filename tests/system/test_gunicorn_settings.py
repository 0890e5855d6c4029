"""gunicorn refuses several workers that would each count rate limits on their own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.system

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start(tmp_path, **env):
    environment = {**os.environ, "REFERRAL_INSTANCE_PATH": str(tmp_path), "PORT": "0",
                   "BIND_HOST": "127.0.0.1", **env}
    return subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
                          cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)


def test_two_workers_on_in_memory_rate_limits_refuse_to_start(tmp_path):
    result = start(tmp_path, WEB_CONCURRENCY="2", RATELIMIT_STORAGE_URI="memory://")
    assert result.returncode != 0
    assert "2 workers would each keep their own rate-limit counters" in result.stderr
