"""Configuration: defaults, CONTACTHUB_* environment variables, a TOML file, and their order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from contacthub.app import build_hub
from contacthub.errors import HubError
from contacthub.settings import DEFAULT_SECRET, Settings
from contacthub.storage.database import Database

POSTGRES_URL = "postgresql://hub@db.example.com:5432/contacthub"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CONTACTHUB_* variable from outside, and a working directory of the test's own."""
    for name in list(os.environ):
        if name.upper().startswith("CONTACTHUB_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_config(path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("CONTACTHUB_CONFIG", str(path))
    return path


def test_defaults() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite:///contacthub.db"
    assert settings.is_local
    assert settings.enable is True
    assert settings.enable_tracking is True
    assert settings.cors_allowed_origins == []
    assert settings.secret_key.get_secret_value() == DEFAULT_SECRET
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_default_database_is_a_sqlite_file_in_the_working_directory(tmp_path: Path) -> None:
    database = Database(Settings().database_url)
    try:
        with database.write() as session:
            session.connection().exec_driver_sql("CREATE TABLE probe (x INTEGER)")
    finally:
        database.dispose()
    assert (tmp_path / "contacthub.db").is_file()


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACTHUB_DATABASE_URL", f"  {POSTGRES_URL} ")
    monkeypatch.setenv("CONTACTHUB_ENABLE_TRACKING", "false")
    monkeypatch.setenv("CONTACTHUB_CORS_ALLOWED_ORIGINS", '["https://www.example.com"]')
    monkeypatch.setenv("CONTACTHUB_WRITER_MAX_BATCH", "64")
    monkeypatch.setenv("CONTACTHUB_SECRET_KEY", "s3cret")
    settings = Settings()
    assert settings.database_url == POSTGRES_URL
    assert not settings.is_local
    assert settings.enable is True
    assert settings.enable_tracking is False
    assert settings.cors_allowed_origins == ["https://www.example.com"]
    assert settings.writer_max_batch == 64
    assert settings.secret_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_variables_without_the_prefix_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", POSTGRES_URL)
    monkeypatch.setenv("PORT", "1234")
    assert Settings().database_url == "sqlite:///contacthub.db"
    assert Settings().port == 8000


def test_toml_file_named_by_contacthub_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(
        tmp_path / "elsewhere.toml",
        f"""
database_url = "{POSTGRES_URL}"
enable = false
cors_allowed_origins = ["https://a.example", "https://b.example"]
secret_key = "from-the-file"
port = 9000
""",
        monkeypatch,
    )
    settings = Settings()
    assert settings.database_url == POSTGRES_URL
    assert settings.enable is False
    assert settings.cors_allowed_origins == ["https://a.example", "https://b.example"]
    assert settings.secret_key.get_secret_value() == "from-the-file"
    assert settings.port == 9000


def test_contacthub_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "contacthub.toml").write_text("port = 9001\n", encoding="utf-8")
    assert Settings().port == 9001


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(
        tmp_path / "hub.toml",
        f'database_url = "{POSTGRES_URL}"\nport = 9000\nenable_tracking = false\n',
        monkeypatch,
    )
    monkeypatch.setenv("CONTACTHUB_PORT", "9100")
    monkeypatch.setenv("CONTACTHUB_ENABLE_TRACKING", "true")
    settings = Settings()
    assert settings.port == 9100
    assert settings.enable_tracking is True
    assert settings.database_url == POSTGRES_URL  # not in the environment: from the file


def test_unknown_keys_in_the_file_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path / "hub.toml", 'databse_url = "sqlite:///typo.db"\n', monkeypatch)
    with pytest.raises(ValidationError, match="databse_url"):
        Settings()


def test_unknown_keys_in_code_are_refused() -> None:
    with pytest.raises(ValidationError, match="enable_trackin"):
        Settings(enable_trackin=False)  # type: ignore[call-arg]


def test_invalid_values_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACTHUB_SQLITE_SYNCHRONOUS", "OFF")
    with pytest.raises(ValidationError, match="sqlite_synchronous"):
        Settings()
    monkeypatch.delenv("CONTACTHUB_SQLITE_SYNCHRONOUS")
    write_config(tmp_path / "hub.toml", 'port = "eighty"\n', monkeypatch)
    with pytest.raises(ValidationError, match="port"):
        Settings()


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "postgresql+asyncpg://u@h/db", "contacthub.db", ""]
)
def test_database_url_must_be_sqlite_or_postgresql(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTACTHUB_DATABASE_URL", url)
    with pytest.raises(ValidationError, match="sqlite:/// or postgresql://"):
        Settings()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///hub.db",
        "sqlite:////var/lib/contacthub/hub.db",
        "postgresql://u@h/db",
        "postgres://u@h/db",
        "postgresql+psycopg://u:p@h:5432/db",
    ],
)
def test_database_urls_accepted(url: str) -> None:
    assert Settings(database_url=url).database_url == url


def test_build_hub_refuses_the_default_secret_on_postgresql() -> None:
    with pytest.raises((RuntimeError, HubError), match="CONTACTHUB_SECRET_KEY"):
        build_hub(Settings(database_url=POSTGRES_URL))


def test_build_hub_accepts_a_secret_on_postgresql() -> None:
    hub = build_hub(Settings(database_url=POSTGRES_URL, secret_key="s3cret"))  # type: ignore[arg-type]
    hub.database.dispose()  # nothing connected: the hub connects on first use


def test_build_hub_accepts_the_default_secret_on_sqlite(tmp_path: Path) -> None:
    hub = build_hub(Settings(database_url=f"sqlite:///{tmp_path / 'hub.db'}"))
    assert hub.settings.secret_key.get_secret_value() == DEFAULT_SECRET
    hub.database.dispose()


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://hub.example.com", "https://hub.example.com"),
        ("HTTPS://Hub.Example.com:443/", "https://hub.example.com"),
        ("http://10.0.0.5:8000", "http://10.0.0.5:8000"),
        ("", None),
    ],
)
def test_public_url_is_kept_as_browsers_send_origins(given: str, stored: str | None) -> None:
    assert Settings(public_url=given).public_url == stored


@pytest.mark.parametrize(
    "refused", ["*", "hub.example.com", "ftp://hub.example.com", "https://example.com/hub"]
)
def test_public_url_must_be_an_origin(refused: str) -> None:
    with pytest.raises(ValidationError, match="public_url"):
        Settings(public_url=refused)


def test_site_url_is_the_public_url_else_the_bound_address() -> None:
    assert Settings(host="0.0.0.0", port=9000).site_url == "http://127.0.0.1:9000"  # noqa: S104
    assert Settings(host="::1").site_url == "http://[::1]:8000"
    assert Settings(public_url="https://hub.example.com").site_url == "https://hub.example.com"
