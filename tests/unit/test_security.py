"""Security settings a user relies on: login rate limiting, static files, headers, deploy checks,
private database and key files."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from audit.models import AuditEvent

ROOT = Path(__file__).resolve().parents[2]


def _login(client, url: str, username: str, password: str):
    return client.post(url, {"username": username, "password": password, "next": "/clusters/"})


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_thirty_wrong_passwords_lock_the_right_one_out(client, make_user, url):
    user = make_user("target", superuser=True)
    for _ in range(30):
        response = _login(client, url, "target", "wrong-password")
        assert response.status_code in (200, 429)
    response = _login(client, url, "target", "pw-target")
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session, "the right password must not log in during the lockout"
    assert client.get("/clusters/").status_code == 302
    failed = AuditEvent.objects.filter(action="auth.login_failed")
    assert failed.count() == 31 and failed.filter(outcome="denied").exists()
    assert not AuditEvent.objects.filter(action="auth.login", actor_id=user.pk).exists()
    assert "wrong-password" not in str(list(failed.values_list("details", flat=True)))


@pytest.mark.django_db
def test_a_few_wrong_passwords_do_not_lock_out(client, make_user):
    make_user("typo")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "/login/", "typo", "nope")
    assert _login(client, "/login/", "typo", "pw-typo").status_code == 302


@pytest.mark.django_db
def test_static_files_are_served_and_traversal_is_a_404(client):
    css = client.get("/static/kubeboard/kubeboard.css")
    assert css.status_code == 200
    for path in ("/static/%2e%2e/%2e%2e/config/settings.py", "/static/../config/settings.py", "/static/nope.css"):
        assert client.get(path).status_code == 404, path


@pytest.mark.django_db
def test_pages_send_security_headers(client):
    response = client.get("/login/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_templates_have_no_inline_script_or_style():
    """The CSP forbids inline code: every page's script and style must come from /static/."""
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for marker in ("<script>", 'style="', " onclick=", " onload=", "<style"):
            if marker in text:
                offenders.append(f"{path.relative_to(ROOT)}: {marker}")
        for line in text.splitlines():
            if "<script" in line and "src=" not in line and 'type="application/json"' not in line:
                offenders.append(f"{path.relative_to(ROOT)}: inline <script>")
    assert not offenders, offenders


def _deploy_check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KUBEBOARD_") and k != "DATABASE_URL"}
    base.update({"KUBEBOARD_DATA_DIR": str(tmp_path), **env})
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_documented_production_settings_pass_check_deploy_without_warnings(tmp_path):
    production = {
        "KUBEBOARD_DEBUG": "0",
        "KUBEBOARD_TLS": "1",
        "KUBEBOARD_SECRET_KEY": secrets.token_urlsafe(50),
        "KUBEBOARD_ALLOWED_HOSTS": "kubeboard.example.com",
    }
    result = _deploy_check(tmp_path, **production)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    # Without TLS the same check warns (the test can fail): cookies and HSTS need it.
    insecure = _deploy_check(tmp_path, **(production | {"KUBEBOARD_TLS": "0"}))
    assert insecure.returncode != 0 and "SESSION_COOKIE_SECURE" in insecure.stderr + insecure.stdout


@pytest.mark.django_db
def test_database_and_key_files_are_private():
    from audit import keys
    from core.encryption import keyring

    keys.keyring(), keys.checkpoint_key(), keyring()
    files = [settings.AUDIT_KEY_FILE, settings.AUDIT_SIGNING_KEY_FILE, settings.ENCRYPTION_KEY_FILE]
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:  # a write makes the -wal and -shm files exist
            cursor.execute("CREATE TABLE IF NOT EXISTS perm_probe (x int)")
        name = str(connection.settings_dict["NAME"])
        files += [Path(p) for p in (name, name + "-wal", name + "-shm") if os.path.exists(p)]
        assert len(files) >= 5
    for path in files:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode == 0o600, f"{path} is {oct(mode)}"


def test_a_new_data_dir_gets_a_private_database_file(tmp_path):
    script = (
        "import django, os; django.setup(); from django.db import connection; connection.ensure_connection(); "
        "connection.cursor().execute('create table t (x int)'); "
        "print(oct(os.stat(connection.settings_dict['NAME']).st_mode & 0o777))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"KUBEBOARD_DATA_DIR": str(tmp_path / "fresh"), "DJANGO_SETTINGS_MODULE": "config.settings"})
    env.pop("KUBEBOARD_SQLITE_PATH", None)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "0o600", result.stderr
    for suffix in ("-wal", "-shm"):
        path = tmp_path / "fresh" / f"kubeboard.sqlite3{suffix}"
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
