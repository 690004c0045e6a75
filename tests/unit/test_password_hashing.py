"""Kubeboard's own processes hash passwords at Django's full strength; only the test process
uses tests.support.hashers' cheaper PBKDF2 (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.contrib.auth.hashers import check_password, identify_hasher, make_password

ROOT = Path(__file__).resolve().parents[2]


def test_kubeboards_processes_hash_with_pbkdf2_at_full_strength(tmp_path):
    script = (
        "import django; django.setup(); from django.contrib.auth.hashers import get_hasher; "
        "h = get_hasher(); print(h.algorithm, h.iterations)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "KUBEBOARD_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    algorithm, iterations = out.stdout.split()
    assert algorithm == "pbkdf2_sha256" and int(iterations) >= 1_000_000


def test_a_test_users_hash_is_the_same_algorithm_and_verifies_at_full_strength_too():
    stored = make_password("pw-olivia")
    assert stored.startswith("pbkdf2_sha256$1000$")
    assert identify_hasher(stored).algorithm == "pbkdf2_sha256"
    assert check_password("pw-olivia", stored) and not check_password("pw-other", stored)
