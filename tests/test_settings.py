"""Configuration (contract §6, §3.5, §3.6): plain synchronous tests, no database involved."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from webmacs.settings import Settings, SettingsError, load_settings, startup_warnings

GOOD_KEY = "k" * 32


def load(tmp_path: Path, persist_secret: bool = False, **env: str) -> Settings:
    return load_settings(env, workdir=tmp_path, persist_secret=persist_secret)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


# ------------------------------------------------------------------ defaults


def test_defaults(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert s.storage_backend == "sqlite"
    assert s.database_url.startswith("sqlite://")
    assert s.database_url.endswith("webmacs.db")
    assert s.access_token_expire_minutes == 1440
    assert s.initial_admin_email == "admin@webmacs.io"
    assert s.initial_admin_username == "admin"
    assert s.initial_admin_password == "admin123"
    assert list(s.cors_origins) == ["http://localhost:3000", "http://localhost:5173"]
    assert s.ws_heartbeat_interval == 30
    assert s.mode == "development"
    assert s.ws_anonymous_telemetry is False
    assert s.host == "127.0.0.1"
    assert s.port == 8000
    assert s.max_batch == 10000
    # Development without SECRET_KEY still gets a usable key.
    assert len(s.secret_key) >= 32


def test_default_database_is_in_the_working_directory(tmp_path: Path) -> None:
    s = load(tmp_path, persist_secret=True)
    # The development key is persisted beside the default database file.
    secret = tmp_path / "webmacs.db.secret"
    assert secret.is_file()
    assert secret.read_text(encoding="utf-8").strip() == s.secret_key


def test_explicit_values_are_used(tmp_path: Path) -> None:
    s = load(
        tmp_path,
        DATABASE_URL=sqlite_url(tmp_path / "lab.db"),
        SECRET_KEY=GOOD_KEY,
        ACCESS_TOKEN_EXPIRE_MINUTES="15",
        INITIAL_ADMIN_EMAIL="lab@pi.local",
        INITIAL_ADMIN_USERNAME="labadmin",
        INITIAL_ADMIN_PASSWORD="s3cret-pass",
        WS_HEARTBEAT_INTERVAL="5",
        WS_ANONYMOUS_TELEMETRY="true",
        HOST="0.0.0.0",
        PORT="9001",
        MAX_BATCH="500",
    )
    assert s.database_url == sqlite_url(tmp_path / "lab.db")
    assert s.secret_key == GOOD_KEY
    assert s.access_token_expire_minutes == 15
    assert s.initial_admin_email == "lab@pi.local"
    assert s.initial_admin_username == "labadmin"
    assert s.initial_admin_password == "s3cret-pass"
    assert s.ws_heartbeat_interval == 5
    assert s.ws_anonymous_telemetry is True
    assert s.host == "0.0.0.0"
    assert s.port == 9001
    assert s.max_batch == 500


# ------------------------------------------------------------------ DATABASE_URL and STORAGE_BACKEND


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("sqlite:///relative.db", "sqlite"),
        ("sqlite:////var/lib/webmacs/abs.db", "sqlite"),
        ("postgresql://webmacs:pw@db:5432/webmacs", "postgresql"),
        ("postgres://webmacs:pw@db:5432/webmacs", "postgresql"),
        ("postgresql+asyncpg://webmacs:pw@db:5432/webmacs", "postgresql"),
        ("postgresql+psycopg://webmacs:pw@db/webmacs", "postgresql"),
    ],
)
def test_backend_is_inferred_from_the_url(tmp_path: Path, url: str, backend: str) -> None:
    s = load(tmp_path, DATABASE_URL=url, SECRET_KEY=GOOD_KEY)
    assert s.storage_backend == backend


def test_asyncpg_suffix_is_accepted_and_ignored(tmp_path: Path) -> None:
    s = load(tmp_path, DATABASE_URL="postgresql+asyncpg://u:p@db:5432/lab", SECRET_KEY=GOOD_KEY)
    assert s.storage_backend == "postgresql"
    # The v2 driver suffix must not leak into the driver actually used.
    assert "asyncpg" not in s.sqlalchemy_url
    assert "db:5432/lab" in s.sqlalchemy_url


@pytest.mark.parametrize("url", ["mysql://u@h/db", "http://example.com", "not a url"])
def test_unsupported_database_url_names_the_variable(tmp_path: Path, url: str) -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load(tmp_path, DATABASE_URL=url, SECRET_KEY=GOOD_KEY)


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("postgresql://u@h/db", "sqlite"),
        ("sqlite:///x.db", "postgresql"),
        ("sqlite:///x.db", "timescale"),
    ],
)
def test_storage_backend_contradicting_url_fails(tmp_path: Path, url: str, backend: str) -> None:
    with pytest.raises(SettingsError, match="STORAGE_BACKEND"):
        load(tmp_path, DATABASE_URL=url, STORAGE_BACKEND=backend, SECRET_KEY=GOOD_KEY)


def test_unknown_storage_backend_fails(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="STORAGE_BACKEND"):
        load(tmp_path, DATABASE_URL="sqlite:///x.db", STORAGE_BACKEND="mongodb")


def test_matching_storage_backend_is_accepted(tmp_path: Path) -> None:
    s = load(tmp_path, DATABASE_URL="sqlite:///x.db", STORAGE_BACKEND="sqlite", SECRET_KEY=GOOD_KEY)
    assert s.storage_backend == "sqlite"
    s = load(tmp_path, DATABASE_URL="postgres://u@h/db", STORAGE_BACKEND="postgresql", SECRET_KEY=GOOD_KEY)
    assert s.storage_backend == "postgresql"


def test_timescale_must_be_named_explicitly(tmp_path: Path) -> None:
    # A PostgreSQL URL alone never means Timescale ...
    s = load(tmp_path, DATABASE_URL="postgresql://u@h/db", SECRET_KEY=GOOD_KEY)
    assert s.storage_backend == "postgresql"
    # ... naming it with a PostgreSQL URL selects it.
    s = load(tmp_path, DATABASE_URL="postgresql://u@h/db", STORAGE_BACKEND="timescale", SECRET_KEY=GOOD_KEY)
    assert s.storage_backend == "timescale"


def test_timescale_without_url_uses_sqlite_default_and_fails(tmp_path: Path) -> None:
    # No DATABASE_URL means the default SQLite file, which contradicts timescale.
    with pytest.raises(SettingsError, match="STORAGE_BACKEND"):
        load(tmp_path, STORAGE_BACKEND="timescale", SECRET_KEY=GOOD_KEY)


# ------------------------------------------------------------------ SECRET_KEY (§3.6)


def test_production_requires_secret_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        load(tmp_path, WEBMACS_MODE="production", DATABASE_URL=sqlite_url(tmp_path / "p.db"),
             persist_secret=True)
    # No key is generated or persisted in production.
    assert not (tmp_path / "p.db.secret").exists()
    assert not (tmp_path / "webmacs.secret").exists()


def test_production_rejects_short_secret_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        load(tmp_path, WEBMACS_MODE="production", SECRET_KEY="x" * 31)


def test_production_accepts_32_char_secret_key(tmp_path: Path) -> None:
    s = load(tmp_path, WEBMACS_MODE="production", SECRET_KEY="x" * 32, persist_secret=True)
    assert s.mode == "production"
    assert s.secret_key == "x" * 32


def test_invalid_mode_fails(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="WEBMACS_MODE"):
        load(tmp_path, WEBMACS_MODE="staging", SECRET_KEY=GOOD_KEY)


def test_development_short_key_is_accepted(tmp_path: Path) -> None:
    s = load(tmp_path, SECRET_KEY="short")
    assert s.secret_key == "short"


def test_development_persists_generated_key_beside_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "data" / "lab.db"
    db.parent.mkdir()
    first = load(tmp_path, persist_secret=True, DATABASE_URL=sqlite_url(db))
    secret_file = tmp_path / "data" / "lab.db.secret"
    assert secret_file.is_file()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert len(first.secret_key) >= 32
    assert secret_file.read_text(encoding="utf-8").strip() == first.secret_key
    # The next start reuses it, so tokens survive restarts.
    second = load(tmp_path, persist_secret=True, DATABASE_URL=sqlite_url(db))
    assert second.secret_key == first.secret_key
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_generated_keys_differ_between_databases(tmp_path: Path) -> None:
    a = load(tmp_path, persist_secret=True, DATABASE_URL=sqlite_url(tmp_path / "a.db"))
    b = load(tmp_path, persist_secret=True, DATABASE_URL=sqlite_url(tmp_path / "b.db"))
    assert a.secret_key != b.secret_key
    assert (tmp_path / "a.db.secret").is_file()
    assert (tmp_path / "b.db.secret").is_file()


def test_development_postgres_key_persisted_in_workdir(tmp_path: Path) -> None:
    first = load(tmp_path, persist_secret=True, DATABASE_URL="postgresql://u@h/db")
    secret_file = tmp_path / "webmacs.secret"
    assert secret_file.is_file()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    second = load(tmp_path, persist_secret=True, DATABASE_URL="postgresql://u@h/db")
    assert second.secret_key == first.secret_key


def test_explicit_key_is_not_replaced_by_persisted_one(tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    load(tmp_path, persist_secret=True, DATABASE_URL=sqlite_url(db))
    s = load(tmp_path, persist_secret=True, DATABASE_URL=sqlite_url(db), SECRET_KEY=GOOD_KEY)
    assert s.secret_key == GOOD_KEY


def test_explicit_key_writes_no_secret_file(tmp_path: Path) -> None:
    load(tmp_path, persist_secret=True, DATABASE_URL=sqlite_url(tmp_path / "lab.db"), SECRET_KEY=GOOD_KEY)
    assert not (tmp_path / "lab.db.secret").exists()


# ------------------------------------------------------------------ invalid values name the variable


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("PORT", "-1"),
        ("PORT", "80.5"),
        ("MAX_BATCH", "0"),
        ("MAX_BATCH", "-10"),
        ("MAX_BATCH", "ten"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "0"),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", "soon"),
        ("WS_HEARTBEAT_INTERVAL", "fast"),
        ("WS_HEARTBEAT_INTERVAL", "0"),
        ("WS_HEARTBEAT_INTERVAL", "-5"),
        ("WS_ANONYMOUS_TELEMETRY", "maybe"),
        ("HTTP_KEEP_ALIVE_TIMEOUT", "0"),
        ("HTTP_HEADER_TIMEOUT", "soon"),
        ("HTTP_BODY_TIMEOUT", "-1"),
        ("SHUTDOWN_GRACE_SECONDS", "-1"),
        ("SHUTDOWN_GRACE_SECONDS", "601"),
        ("MAX_CONNECTIONS", "0"),
        ("MAX_CONNECTIONS_PER_ADDRESS", "many"),
    ],
)
def test_invalid_value_names_the_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load(tmp_path, SECRET_KEY=GOOD_KEY, **{name: value})


@pytest.mark.parametrize("value", ["true", "1", "yes", "TRUE"])
def test_boolean_true_spellings(tmp_path: Path, value: str) -> None:
    assert load(tmp_path, SECRET_KEY=GOOD_KEY, WS_ANONYMOUS_TELEMETRY=value).ws_anonymous_telemetry is True


@pytest.mark.parametrize("value", ["false", "0", "no", "False"])
def test_boolean_false_spellings(tmp_path: Path, value: str) -> None:
    assert load(tmp_path, SECRET_KEY=GOOD_KEY, WS_ANONYMOUS_TELEMETRY=value).ws_anonymous_telemetry is False


# ------------------------------------------------------------------ admin seed values (§3.5)


@pytest.mark.parametrize("email", ["not-an-email", "two@at@signs", "@nolocal", "nodomain@", "with space@lab"])
def test_bad_seed_email_fails(tmp_path: Path, email: str) -> None:
    with pytest.raises(SettingsError, match="INITIAL_ADMIN_EMAIL"):
        load(tmp_path, SECRET_KEY=GOOD_KEY, INITIAL_ADMIN_EMAIL=email)


@pytest.mark.parametrize("email", ["lab@pi.local", "ops@box.lan", "root@localhost"])
def test_permissive_seed_email_is_accepted(tmp_path: Path, email: str) -> None:
    assert load(tmp_path, SECRET_KEY=GOOD_KEY, INITIAL_ADMIN_EMAIL=email).initial_admin_email == email


def test_seed_email_domain_is_lower_cased(tmp_path: Path) -> None:
    s = load(tmp_path, SECRET_KEY=GOOD_KEY, INITIAL_ADMIN_EMAIL="Ops.Team@Box.LAN")
    assert s.initial_admin_email == "Ops.Team@box.lan"


@pytest.mark.parametrize("username", ["a", "x" * 51])
def test_bad_seed_username_fails(tmp_path: Path, username: str) -> None:
    with pytest.raises(SettingsError, match="INITIAL_ADMIN_USERNAME"):
        load(tmp_path, SECRET_KEY=GOOD_KEY, INITIAL_ADMIN_USERNAME=username)


# ------------------------------------------------------------------ CORS_ORIGINS


def test_cors_origins_json_list(tmp_path: Path) -> None:
    s = load(tmp_path, SECRET_KEY=GOOD_KEY,
             CORS_ORIGINS='["https://lab.example.org", "http://10.0.0.5:8080"]')
    assert list(s.cors_origins) == ["https://lab.example.org", "http://10.0.0.5:8080"]


@pytest.mark.parametrize("value", ['["https://a.example",', "[1, 2]", '["ok", null]'])
def test_bad_cors_origins_fails(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError, match="CORS_ORIGINS"):
        load(tmp_path, SECRET_KEY=GOOD_KEY, CORS_ORIGINS=value)


# ------------------------------------------------------------------ .env file


def test_dotenv_is_read_and_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# lab settings\n"
        "PORT=9001\n"
        "MAX_BATCH=123\n"
        'HOST="0.0.0.0"\n'
        "INITIAL_ADMIN_USERNAME=fromdotenv\n"
        "\n",
        encoding="utf-8",
    )
    s = load(tmp_path, SECRET_KEY=GOOD_KEY, PORT="9002")
    assert s.port == 9002  # the environment wins
    assert s.max_batch == 123
    assert s.host == "0.0.0.0"
    assert s.initial_admin_username == "fromdotenv"


def test_dotenv_invalid_value_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MAX_BATCH=lots\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="MAX_BATCH"):
        load(tmp_path, SECRET_KEY=GOOD_KEY)


def test_dotenv_secret_key_counts_for_production(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"SECRET_KEY={'z' * 40}\nWEBMACS_MODE=production\n", encoding="utf-8")
    s = load(tmp_path)
    assert s.mode == "production"
    assert s.secret_key == "z" * 40


def test_overrides_beat_environment(tmp_path: Path) -> None:
    s = load_settings({"PORT": "9002", "SECRET_KEY": GOOD_KEY}, workdir=tmp_path,
                      overrides={"PORT": "9003"}, persist_secret=False)
    assert s.port == 9003


# ------------------------------------------------------------------ session cookie, anonymous networks


def test_cookie_and_network_defaults(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert s.session_cookie_secure is None  # auto: follows the request's TLS
    assert s.ws_anonymous_telemetry_networks == ()


@pytest.mark.parametrize(("value", "expected"), [
    ("auto", None), ("AUTO", None), ("", None), ("true", True), ("1", True), ("false", False), ("off", False),
])
def test_session_cookie_secure(tmp_path: Path, value: str, expected: bool | None) -> None:
    assert load(tmp_path, SESSION_COOKIE_SECURE=value).session_cookie_secure is expected


def test_bad_session_cookie_secure_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^SESSION_COOKIE_SECURE must be auto, true or false"):
        load(tmp_path, SESSION_COOKIE_SECURE="sometimes")


def test_anonymous_telemetry_networks(tmp_path: Path) -> None:
    s = load(tmp_path, WS_ANONYMOUS_TELEMETRY_NETWORKS="10.0.0.0/8, fd00::/8")
    assert [str(n) for n in s.ws_anonymous_telemetry_networks] == ["10.0.0.0/8", "fd00::/8"]
    assert s.ws_anonymous_telemetry is False
    assert any("10.0.0.0/8, fd00::/8" in note for note in startup_warnings(s))


def test_a_bad_cidr_stops_startup_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load(tmp_path, WS_ANONYMOUS_TELEMETRY_NETWORKS="127.0.0.0/8,10.0.0.300/8")
    message = str(info.value)
    assert message.startswith("WS_ANONYMOUS_TELEMETRY_NETWORKS: '10.0.0.300/8' is not a network")
    assert "\n" not in message
# ------------------------------------------------------------------ connection limits


def test_connection_limit_defaults(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert (s.http_keep_alive_timeout, s.http_header_timeout, s.http_body_timeout) == (10, 10, 30)
    assert s.shutdown_grace_seconds == 3
    # loadgen runs ~500 subscribers plus REST clients from one address: all admitted.
    assert s.max_connections_per_address == 1024
    assert s.max_connections == 4096


def test_connection_limits_are_read(tmp_path: Path) -> None:
    s = load(tmp_path, HTTP_KEEP_ALIVE_TIMEOUT="2.5", HTTP_HEADER_TIMEOUT="3",
             HTTP_BODY_TIMEOUT="60", MAX_CONNECTIONS="100", MAX_CONNECTIONS_PER_ADDRESS="7",
             SHUTDOWN_GRACE_SECONDS="30")
    assert (s.http_keep_alive_timeout, s.http_header_timeout, s.http_body_timeout) == (2.5, 3, 60)
    assert s.shutdown_grace_seconds == 30
    assert (s.max_connections, s.max_connections_per_address) == (100, 7)


def test_per_address_cap_defaults_to_at_most_the_total(tmp_path: Path) -> None:
    assert load(tmp_path, MAX_CONNECTIONS="300").max_connections_per_address == 300


def test_per_address_cap_above_the_total_fails(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="MAX_CONNECTIONS_PER_ADDRESS must be between 1 and 300"):
        load(tmp_path, MAX_CONNECTIONS="300", MAX_CONNECTIONS_PER_ADDRESS="301")


def test_bus_defaults_to_in_process(tmp_path: Path) -> None:
    s = load(tmp_path, SECRET_KEY=GOOD_KEY)
    assert (s.bus_url, s.bus_subject) == (None, "webmacs.datapoints")
    s = load(tmp_path, SECRET_KEY=GOOD_KEY, WEBMACS_BUS_URL=" nats://127.0.0.1:4222 ",
             WEBMACS_BUS_SUBJECT="plant-1.datapoints")
    assert (s.bus_url, s.bus_subject) == ("nats://127.0.0.1:4222", "plant-1.datapoints")


@pytest.mark.parametrize(("name", "value"), [
    ("WEBMACS_BUS_URL", "http://127.0.0.1:4222"), ("WEBMACS_BUS_URL", "127.0.0.1:4222"),
    ("WEBMACS_BUS_SUBJECT", "a.*"), ("WEBMACS_BUS_SUBJECT", "a..b"), ("WEBMACS_BUS_SUBJECT", "a b"),
])
def test_bad_bus_settings_name_the_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load(tmp_path, SECRET_KEY=GOOD_KEY, **{name: value})
