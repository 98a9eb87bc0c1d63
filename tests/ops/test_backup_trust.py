"""`obeya backup` as an administrator runs it: no browser sessions in the file, `--encrypt`
unreadable without the passphrase, `obeya restore` back, secrets sealed, key apart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.processes import clean_env, obeya_server, run_obeya

PASSPHRASE = "correct horse battery staple 42"


def _rows(path: Path, query: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


@pytest.fixture
def used_obeya(tmp_path: Path) -> dict[str, str]:
    """An Obeya with a signed-in browser session and a stored secret, made over HTTP."""
    env = clean_env(tmp_path / "source")
    assert run_obeya("migrate", env=env).returncode == 0
    made = run_obeya("createuser", "root", "--admin", "--password-stdin", env=env, stdin=PASSPHRASE)
    assert made.returncode == 0, made.stderr
    token = run_obeya("token", "create", "--user", "root", env=env).stdout.strip().split()[-1]
    with (
        obeya_server(env) as url,
        httpx.Client(base_url=f"{url}/api", headers={"Authorization": f"Bearer {token}"}) as api,
        httpx.Client(base_url=url) as browser,
    ):
        created = api.post("/services", json={"slug": "shop", "name": "Shop"})
        assert created.status_code == 201, created.text
        stored = api.put("/services/shop/secrets/API_TOKEN", json={"value": "backup-me-token"})
        assert stored.status_code == 204, stored.text
        browser.get("/login/")
        signed_in = browser.post(
            "/login/",
            data={
                "username": "root",
                "password": PASSPHRASE,
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
            headers={"Referer": f"{url}/login/"},
        )
        assert signed_in.status_code == 302, signed_in.text
    live = tmp_path / "source" / "obeya.sqlite3"
    assert _rows(live, "SELECT count(*) FROM django_session") != [(0,)]
    return env


@pytest.mark.e2e
def test_a_backup_holds_no_session_and_secrets_stay_sealed(used_obeya, tmp_path):
    backup = tmp_path / "obeya.backup"
    made = run_obeya("backup", str(backup), env=used_obeya)
    assert made.returncode == 0, made.stderr
    assert _rows(backup, "SELECT count(*) FROM django_session") == [(0,)]
    assert b"backup-me-token" not in backup.read_bytes()
    ((value,),) = _rows(backup, "SELECT value FROM pipelines_secret")
    assert str(value).startswith("gAAAAA")  # still sealed with the key file
    key = (tmp_path / "source" / "keys" / "secrets.key").read_bytes().strip()
    assert key not in backup.read_bytes()  # the key stays apart from the backup


@pytest.mark.e2e
def test_an_encrypted_backup_needs_its_passphrase_and_restores(used_obeya, tmp_path):
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    backup = tmp_path / "obeya.backup.enc"
    refused = run_obeya("backup", "--encrypt", str(backup), env=used_obeya)
    assert refused.returncode == 2 and "passphrase" in refused.stderr and not backup.exists()
    made = run_obeya(
        "backup",
        "--encrypt",
        "--passphrase-file",
        str(passphrase_file),
        str(backup),
        env=used_obeya,
    )
    assert made.returncode == 0, made.stderr
    data = backup.read_bytes()
    assert not data.startswith(b"SQLite format 3") and b"pipelines_secret" not in data
    with pytest.raises(sqlite3.DatabaseError):
        _rows(backup, "SELECT count(*) FROM sqlite_master")

    # Restored on another machine: the key file travels apart from the backup.
    fresh_dir = tmp_path / "fresh"
    (fresh_dir / "keys").mkdir(parents=True)
    key = tmp_path / "source" / "keys" / "secrets.key"
    (fresh_dir / "keys" / "secrets.key").write_bytes(key.read_bytes())
    fresh = clean_env(fresh_dir)
    without = run_obeya("restore", str(backup), env=fresh)
    assert without.returncode == 2 and "encrypted" in without.stderr
    wrong = run_obeya("restore", str(backup), env={**fresh, "OBEYA_BACKUP_PASSPHRASE": "x" * 20})
    assert wrong.returncode == 2 and "wrong passphrase" in wrong.stderr
    restored = run_obeya(
        "restore", str(backup), env={**fresh, "OBEYA_BACKUP_PASSPHRASE": PASSPHRASE}
    )
    assert restored.returncode == 0, restored.stderr
    source_db, fresh_db = tmp_path / "source" / "obeya.sqlite3", fresh_dir / "obeya.sqlite3"
    query = "SELECT name, value FROM pipelines_secret"
    assert _rows(fresh_db, query) == _rows(source_db, query)
    assert _rows(fresh_db, "SELECT count(*) FROM django_session") == [(0,)]
    assert not [p for p in fresh_dir.iterdir() if p.name.startswith("restore-")]
    token = run_obeya("token", "create", "--user", "root", env=fresh).stdout.split()[-1]
    with obeya_server(fresh) as url, httpx.Client(base_url=url) as api:
        listed = api.get("/api/services/shop/secrets", headers={"Authorization": f"Bearer {token}"})
        assert [s["name"] for s in listed.json()] == ["API_TOKEN"]


@pytest.mark.e2e
def test_rotate_key_from_the_command_line(used_obeya, tmp_path):
    key = tmp_path / "source" / "keys" / "secrets.key"
    before_key = key.read_bytes()
    db = tmp_path / "source" / "obeya.sqlite3"
    ((before,),) = _rows(db, "SELECT value FROM pipelines_secret")
    rotated = run_obeya("secrets", "rotate-key", env=used_obeya)
    assert rotated.returncode == 0, rotated.stderr
    assert "1 stored secret(s) encrypted again" in rotated.stdout and str(key) in rotated.stdout
    ((after,),) = _rows(db, "SELECT value FROM pipelines_secret")
    assert after != before and key.read_bytes() != before_key
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert _rows(db, "SELECT kind FROM core_event WHERE kind = 'secrets.key_rotated'") == [
        ("secrets.key_rotated",)
    ]
