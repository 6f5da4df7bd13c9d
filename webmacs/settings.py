"""Configuration: environment variables (and an optional ``.env``) into one immutable object.

Everything is validated once, at start, so a bad value stops the server with one line that names
the variable instead of failing later inside a request.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import attrs
import orjson

from webmacs.client_address import Network, parse_networks
from webmacs.login_throttle import ThrottlePolicy
from webmacs.storage.timescale import TimescaleOptions, valid_interval
from webmacs.validation import normalise_email

log = logging.getLogger(__name__)

Backend = Literal["sqlite", "postgresql", "timescale"]
Mode = Literal["development", "production"]
LogFormat = Literal["json", "text"]

DEFAULT_ADMIN_PASSWORD = "admin123"
MIN_SECRET_LENGTH = 32


class SettingsError(Exception):
    """A configuration value is unusable; the message names the variable."""


@attrs.frozen
class Settings:
    database_url: str
    storage_backend: Backend
    secret_key: str
    access_token_expire_minutes: int
    initial_admin_email: str
    initial_admin_username: str
    initial_admin_password: str
    cors_origins: tuple[str, ...]
    ws_heartbeat_interval: float
    mode: Mode
    ws_anonymous_telemetry: bool
    host: str
    port: int
    max_batch: int
    bcrypt_rounds: int = 12
    db_pool_size: int = 8
    max_body_bytes: int = 8 * 1024 * 1024
    secret_key_generated: bool = False
    ingest_flush_window: float = 0.0
    ingest_frame_retention_hours: int = 48
    command_ttl_seconds: int = 300
    timescale: TimescaleOptions = attrs.field(factory=TimescaleOptions)
    login_throttle: ThrottlePolicy = attrs.field(factory=ThrottlePolicy)
    trusted_proxies: tuple[Network, ...] = ()
    # None = auto: Secure when the login request itself came over TLS.
    session_cookie_secure: bool | None = None
    ws_anonymous_telemetry_networks: tuple[Network, ...] = ()
    http_keep_alive_timeout: float = 10.0
    http_header_timeout: float = 10.0
    http_body_timeout: float = 30.0
    shutdown_grace_seconds: float = 3.0  # in-flight HTTP requests at a stop
    max_connections_per_address: int = 1024
    max_connections: int = 4096
    bus_url: str | None = None  # None: the in-process bus (one instance)
    bus_subject: str = "webmacs.datapoints"
    workers: int = 1  # processes `webmacs serve` runs (more than one needs PostgreSQL and a bus)
    metrics_enabled: bool = True  # /metrics (Prometheus)
    metrics_bind: str | None = None  # host:port of a separate, unauthenticated /metrics listener
    log_format: LogFormat = "text"  # json: one object per line (the production default)

    @property
    def sqlalchemy_url(self) -> str:
        """The URL with the driver SQLAlchemy should use (a v2 ``+asyncpg`` suffix is dropped)."""
        return to_sqlalchemy_url(self.database_url)


def to_sqlalchemy_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    base = scheme.split("+", 1)[0].lower()
    if base in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    if base == "sqlite":
        return f"sqlite+pysqlite://{rest}"
    return url


def backend_of_url(url: str) -> Literal["sqlite", "postgresql"] | None:
    scheme = url.partition("://")[0].split("+", 1)[0].lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    return None


def read_dotenv(path: Path) -> dict[str, str]:
    """A minimal ``.env`` reader: ``KEY=VALUE`` lines, ``#`` comments, optional quotes."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}.") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}.")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}.") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low:g} and {high:g}, got {raw.strip()}.")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}.")


def _auto_bool(env: Mapping[str, str], name: str) -> bool | None:
    """``auto`` (or unset) → None, else a boolean."""
    raw = env.get(name)
    if raw is None or raw.strip().lower() in ("", "auto"):
        return None
    try:
        return _bool(env, name, False)
    except SettingsError:
        raise SettingsError(f"{name} must be auto, true or false, got {raw!r}.") from None


def _networks(env: Mapping[str, str], name: str) -> tuple[Network, ...]:
    try:
        return parse_networks(env.get(name, ""))
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}.") from None


def _origins(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("CORS_ORIGINS")
    if raw is None or raw.strip() == "":
        return ("http://localhost:3000", "http://localhost:5173")
    text = raw.strip()
    if text.startswith("["):
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise SettingsError("CORS_ORIGINS must be a JSON list of origins.") from None
        if not isinstance(parsed, list) or not all(isinstance(o, str) for o in parsed):
            raise SettingsError("CORS_ORIGINS must be a JSON list of strings.")
        return tuple(parsed)
    # A comma-separated list is accepted too: it is what people type by hand.
    return tuple(o.strip() for o in text.split(",") if o.strip())


_SUBJECT_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def _bus(env: Mapping[str, str]) -> tuple[str | None, str]:
    """``WEBMACS_BUS_URL`` (empty: in-process) and ``WEBMACS_BUS_SUBJECT``."""
    url = env.get("WEBMACS_BUS_URL", "").strip() or None
    if url is not None and url.partition("://")[0].lower() not in ("nats", "tls"):
        raise SettingsError(f"WEBMACS_BUS_URL must start with nats:// or tls://, got {url!r}.")
    subject = env.get("WEBMACS_BUS_SUBJECT", "").strip() or "webmacs.datapoints"
    if not all(_SUBJECT_TOKEN.fullmatch(t) for t in subject.split(".")):
        raise SettingsError(
            f"WEBMACS_BUS_SUBJECT must be dot-separated tokens of A-Z a-z 0-9 _ -, got {subject!r}."
        )
    return url, subject


_BIND = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})")


def _metrics_bind(env: Mapping[str, str]) -> str | None:
    """``METRICS_BIND``: ``host:port`` or ``[v6]:port`` (empty: /metrics on the main port)."""
    raw = env.get("METRICS_BIND", "").strip()
    if not raw:
        return None
    match = _BIND.fullmatch(raw)
    if match is None or int(match["port"]) > 65535:
        raise SettingsError(f"METRICS_BIND must be host:port (or [ipv6]:port), got {raw!r}.")
    return raw


def _log_format(env: Mapping[str, str], mode: Mode) -> LogFormat:
    raw = env.get("LOG_FORMAT", "").strip().lower()
    if raw == "":
        return "json" if mode == "production" else "text"
    if raw not in ("json", "text"):
        raise SettingsError(f"LOG_FORMAT must be json or text, got {raw!r}.")
    return raw  # type: ignore[return-value]


def _throttle_policy(env: Mapping[str, str]) -> ThrottlePolicy:
    day = 86_400
    policy = ThrottlePolicy(
        account_failures=_int(env, "LOGIN_MAX_FAILURES_PER_ACCOUNT", 5, 1, 1000),
        address_failures=_int(env, "LOGIN_MAX_FAILURES_PER_ADDRESS", 20, 1, 100_000),
        window=_int(env, "LOGIN_FAILURE_WINDOW_SECONDS", 900, 1, day),
        lockout=_int(env, "LOGIN_LOCKOUT_SECONDS", 30, 1, day),
        max_lockout=_int(env, "LOGIN_LOCKOUT_MAX_SECONDS", 900, 1, day),
        max_entries=_int(env, "LOGIN_THROTTLE_MAX_ENTRIES", 10_000, 100, 10_000_000),
    )
    if policy.max_lockout < policy.lockout:
        raise SettingsError("LOGIN_LOCKOUT_MAX_SECONDS must not be less than LOGIN_LOCKOUT_SECONDS.")
    return policy


def default_secret_path(database_url: str, backend: Backend, workdir: Path) -> Path:
    """Where a development secret is persisted: beside the SQLite file, else in the working directory."""
    if backend == "sqlite":
        db_file = sqlite_file(database_url)
        if db_file is not None:
            return Path(db_file + ".secret")
    return workdir / "webmacs.secret"


def sqlite_file(database_url: str) -> str | None:
    """The file of a ``sqlite:///file`` URL, or None for an in-memory database."""
    rest = database_url.partition("://")[2]
    path = rest[1:] if rest.startswith("/") else rest
    path = path.split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    return path


def load_or_create_secret(path: Path) -> str:
    """Reuse a persisted development key, or create one (0600) so tokens survive restarts."""
    if path.is_file():
        key = path.read_text(encoding="utf-8").strip()
        if len(key) >= MIN_SECRET_LENGTH:
            return key
    key = secrets.token_urlsafe(48)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    os.chmod(path, 0o600)
    return key


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    workdir: Path | None = None,
    overrides: Mapping[str, str] | None = None,
    persist_secret: bool = True,
) -> Settings:
    """Build the settings from ``.env`` < environment < explicit overrides (CLI flags)."""
    workdir = workdir or Path.cwd()
    env: dict[str, str] = read_dotenv(workdir / ".env")
    env.update(os.environ if environ is None else environ)
    env.update(overrides or {})

    database_url = env.get("DATABASE_URL", "").strip() or f"sqlite:///{workdir / 'webmacs.db'}"
    inferred = backend_of_url(database_url)
    if inferred is None:
        raise SettingsError(
            f"DATABASE_URL must start with sqlite://, postgresql:// or postgres://, got {database_url!r}."
        )
    raw_backend = env.get("STORAGE_BACKEND", "").strip().lower()
    backend: Backend
    if raw_backend == "":
        backend = inferred
    elif raw_backend in ("sqlite", "postgresql", "timescale"):
        backend = raw_backend  # type: ignore[assignment]
        wanted = "postgresql" if backend == "timescale" else backend
        if wanted != inferred:
            raise SettingsError(
                f"STORAGE_BACKEND={raw_backend} contradicts DATABASE_URL (a {inferred} URL)."
            )
    else:
        raise SettingsError(
            f"STORAGE_BACKEND must be sqlite, postgresql or timescale, got {raw_backend!r}."
        )

    mode_raw = env.get("WEBMACS_MODE", "").strip().lower() or "development"
    if mode_raw not in ("development", "production"):
        raise SettingsError(f"WEBMACS_MODE must be development or production, got {mode_raw!r}.")
    mode: Mode = mode_raw  # type: ignore[assignment]

    secret = env.get("SECRET_KEY", "")
    generated = False
    if mode == "production":
        if len(secret) < MIN_SECRET_LENGTH:
            raise SettingsError(
                f"SECRET_KEY must be set to at least {MIN_SECRET_LENGTH} characters in production."
            )
    elif secret == "":
        generated = True
        if persist_secret:
            secret = load_or_create_secret(default_secret_path(database_url, backend, workdir))
        else:
            secret = secrets.token_urlsafe(48)

    email_raw = env.get("INITIAL_ADMIN_EMAIL", "admin@webmacs.io")
    email = normalise_email(email_raw)
    if email is None:
        raise SettingsError(f"INITIAL_ADMIN_EMAIL is not a valid email address: {email_raw!r}.")
    username = env.get("INITIAL_ADMIN_USERNAME", "admin")
    if not 2 <= len(username) <= 50:
        raise SettingsError("INITIAL_ADMIN_USERNAME must be 2 to 50 characters long.")
    password = env.get("INITIAL_ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD)
    if not len(password) >= 8 or len(password.encode()) > 72:
        raise SettingsError("INITIAL_ADMIN_PASSWORD must be 8 characters to 72 bytes long.")

    intervals: dict[str, str | None] = {}
    for name, default in (("TIMESCALE_CHUNK_INTERVAL", "1 day"), ("TIMESCALE_COMPRESS_AFTER", None),
                          ("TIMESCALE_RETENTION", None)):
        raw = env.get(name, "").strip()
        if raw and not valid_interval(raw):
            raise SettingsError(f"{name} must be an interval such as '7 days', got {raw!r}.")
        intervals[name] = raw or default

    host = env.get("HOST", "").strip() or "127.0.0.1"
    max_connections = _int(env, "MAX_CONNECTIONS", 4096, 1, 1_000_000)
    per_address = _int(env, "MAX_CONNECTIONS_PER_ADDRESS", min(1024, max_connections), 1,
                       max_connections)
    bus_url, bus_subject = _bus(env)
    return Settings(
        database_url=database_url,
        storage_backend=backend,
        secret_key=secret,
        access_token_expire_minutes=_int(env, "ACCESS_TOKEN_EXPIRE_MINUTES", 1440, 1, 525_600),
        initial_admin_email=email,
        initial_admin_username=username,
        initial_admin_password=password,
        cors_origins=_origins(env),
        ws_heartbeat_interval=_float(env, "WS_HEARTBEAT_INTERVAL", 30.0, 0.05, 3600.0),
        mode=mode,
        ws_anonymous_telemetry=_bool(env, "WS_ANONYMOUS_TELEMETRY", False),
        host=host,
        port=_int(env, "PORT", 8000, 0, 65535),
        max_batch=_int(env, "MAX_BATCH", 10_000, 1, 100_000),
        bcrypt_rounds=_int(env, "BCRYPT_ROUNDS", 12, 4, 16),
        db_pool_size=_int(env, "DB_POOL_SIZE", 8, 1, 64),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 8 * 1024 * 1024, 1024, 256 * 1024 * 1024),
        secret_key_generated=generated,
        ingest_flush_window=_float(env, "INGEST_FLUSH_WINDOW_MS", 0.0, 0.0, 1000.0) / 1000,
        # §8 promises resends are recognised for at least 24 h.
        ingest_frame_retention_hours=_int(env, "INGEST_FRAME_RETENTION_HOURS", 48, 24, 8760),
        command_ttl_seconds=_int(env, "COMMAND_TTL_SECONDS", 300, 1, 7 * 24 * 3600),
        timescale=TimescaleOptions(
            chunk_interval=intervals["TIMESCALE_CHUNK_INTERVAL"] or "1 day",
            compress_after=intervals["TIMESCALE_COMPRESS_AFTER"],
            retention=intervals["TIMESCALE_RETENTION"],
        ),
        login_throttle=_throttle_policy(env),
        trusted_proxies=_networks(env, "TRUSTED_PROXIES"),
        session_cookie_secure=_auto_bool(env, "SESSION_COOKIE_SECURE"),
        ws_anonymous_telemetry_networks=_networks(env, "WS_ANONYMOUS_TELEMETRY_NETWORKS"),
        http_keep_alive_timeout=_float(env, "HTTP_KEEP_ALIVE_TIMEOUT", 10.0, 0.1, 3600.0),
        shutdown_grace_seconds=_float(env, "SHUTDOWN_GRACE_SECONDS", 3.0, 0.0, 600.0),
        http_header_timeout=_float(env, "HTTP_HEADER_TIMEOUT", 10.0, 0.1, 3600.0),
        http_body_timeout=_float(env, "HTTP_BODY_TIMEOUT", 30.0, 0.1, 3600.0),
        max_connections_per_address=per_address,
        max_connections=max_connections,
        bus_url=bus_url,
        workers=_int(env, "WORKERS", 1, 1, 64),
        bus_subject=bus_subject,
        metrics_enabled=_bool(env, "METRICS_ENABLED", True),
        metrics_bind=_metrics_bind(env),
        log_format=_log_format(env, mode),
    )


def startup_warnings(settings: Settings) -> list[str]:
    """Things an operator should hear about on every start."""
    notes = []
    if settings.secret_key_generated:
        notes.append("SECRET_KEY is not set: using a generated development key persisted on disk.")
    elif len(settings.secret_key) < MIN_SECRET_LENGTH:
        notes.append(f"SECRET_KEY is shorter than {MIN_SECRET_LENGTH} characters.")
    if settings.mode == "production" and settings.initial_admin_password == DEFAULT_ADMIN_PASSWORD:
        notes.append("INITIAL_ADMIN_PASSWORD is the default; change the admin password.")
    if settings.ws_anonymous_telemetry:
        notes.append("WS_ANONYMOUS_TELEMETRY is on: token-less controllers may send telemetry.")
    elif settings.ws_anonymous_telemetry_networks:
        nets = ", ".join(str(n) for n in settings.ws_anonymous_telemetry_networks)
        notes.append(f"WS_ANONYMOUS_TELEMETRY_NETWORKS: token-less controllers may send telemetry "
                     f"from {nets}.")
    return notes
