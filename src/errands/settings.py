"""The one Settings object; the only module that reads the environment.

Precedence, highest first: ERRANDS_* variables, the Laravel runner's JOB_* variables, a .env file in the working
directory, errands.toml (or the file ERRANDS_CONFIG names), then the defaults below.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from errands.errors import ConfigError
from errands.retry import Backoff, RetryPolicy

DEFAULT_DATABASE_URL = "sqlite:///errands.db"
DEFAULT_CONFIG_FILE = "errands.toml"
CONFIG_ENV = "ERRANDS_CONFIG"
DOTENV_FILE = ".env"

# Every duration is bounded when the settings load: a value that passes here must never overflow later, when
# the worker adds it to the clock (a retry at now + 1e12 s is past year 9999) or waits on it.
MAX_DURATION_S = 365 * 86400.0
MAX_ATTEMPTS = 1_000_000  # retry budgets: a manual retry adds one to max_attempts, a 32-bit column
INT32 = 2**31 - 1  # priorities are 32-bit columns on every backend

Seconds = Annotated[float, Field(allow_inf_nan=False, ge=0, le=MAX_DURATION_S)]
PositiveSeconds = Annotated[float, Field(allow_inf_nan=False, gt=0, le=MAX_DURATION_S)]

# the allow-list's spelling (errands.targets checks the same at enqueue): pkg.mod.Class or pkg.mod:function
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_CLASS_TARGET = re.compile(rf"{_DOTTED}\.[A-Za-z_][A-Za-z0-9_]*\Z")
_FUNCTION_TARGET = re.compile(rf"{_DOTTED}:[A-Za-z][A-Za-z0-9_]*\Z")
_METHOD = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def _laravel_alias(name: str) -> Any:
    """ERRANDS_<NAME> wins over the Laravel runner's JOB_<NAME>; errands.toml uses the field's name (populate_by_name).
    The bare name is no alias: it would make a MAX_RETRIES variable (or .env line) of the application ours."""
    return AliasChoices(f"ERRANDS_{name.upper()}", f"JOB_{name.upper()}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ERRANDS_",
        env_file=DOTENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",  # a .env file is shared with the application: its other keys are not ours
        populate_by_name=True,
        case_sensitive=False,
    )

    database_url: str = DEFAULT_DATABASE_URL
    allowed_jobs: dict[str, list[str]] = Field(default_factory=dict)
    max_retries: int = Field(3, ge=1, le=MAX_ATTEMPTS, validation_alias=_laravel_alias("max_retries"))
    retry_delay: Seconds = Field(10.0, validation_alias=_laravel_alias("retry_delay"))
    retry_backoff: Backoff = Backoff.FIXED
    retry_max_delay: Seconds = 3600.0
    retry_jitter: bool = True
    default_priority: int = Field(1, ge=-INT32 - 1, le=INT32, validation_alias=_laravel_alias("default_priority"))
    exception_retries: dict[str, int] = Field(default_factory=dict)
    timeout: PositiveSeconds | None = None
    log_file: Path = Path("logs/background_jobs.log")
    error_log_file: Path = Path("logs/background_jobs_errors.log")
    # the worker and leases
    lease_timeout: PositiveSeconds = 30.0
    heartbeat_interval: PositiveSeconds | None = None
    rescue_interval: PositiveSeconds = 10.0
    crash_budget: int = Field(2, ge=1, le=MAX_ATTEMPTS)
    poll_interval: float = Field(1.0, gt=0, le=60, allow_inf_nan=False)
    grace: Seconds = 30.0
    max_jobs_per_child: int = Field(100_000, ge=1)  # a guard against leaky job code; a respawn costs ~0.2 s of CPU
    dispatch: Literal["spawn", "queue"] = "spawn"
    # the logs: the files rotate by size; their lines are also kept in the database for `log_retention`
    log_max_bytes: int = Field(10 * 1024 * 1024, ge=4096, le=2**40)
    log_backups: int = Field(5, ge=0, le=1000)
    log_retention: Seconds = 7 * 86400.0
    # the HTTP API (errands serve). secret_key signs sessions: None means the key generated at first start and
    # kept in the database (every replica shares it); ERRANDS_SECRET_KEY overrides it.
    secret_key: str | None = Field(None, min_length=32, max_length=1024)
    session_idle: PositiveSeconds = 30 * 60.0
    session_max: PositiveSeconds = 12 * 3600.0
    rate_limit: int = Field(60, ge=1, le=1_000_000)  # requests a minute per identity (the Laravel runner's 60)
    login_rate_limit: int = Field(5, ge=1, le=10_000)  # failed logins a minute per account and per address
    metrics_token: str | None = Field(None, min_length=16, max_length=1024)  # None: /metrics is open
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=2**31)

    @field_validator("exception_retries")
    @classmethod
    def _positive_attempts(cls, value: dict[str, int]) -> dict[str, int]:
        for name, attempts in value.items():
            if not 1 <= attempts <= MAX_ATTEMPTS:
                raise ValueError(f"{name} must allow 1 to {MAX_ATTEMPTS} attempts")
        return value

    @field_validator("allowed_jobs")
    @classmethod
    def _well_formed_allow_list(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        """A key that can never match (a typo, "os system") would refuse its jobs at enqueue, far from here."""
        for target, methods in value.items():
            if _FUNCTION_TARGET.match(target):
                if methods:
                    raise ValueError(f"{target!r} is a function target: its methods must be []")
            elif not _CLASS_TARGET.match(target):
                raise ValueError(f"{target!r} is not a target (pkg.mod.Class or pkg.mod:function)")
            bad = [method for method in methods if not _METHOD.match(method)]
            if bad:
                raise ValueError(f"{bad[0]!r} of {target!r} is not a public method name")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = _StrictToml(settings_cls, toml_file=config_path())
        return (init_settings, _Shadowed(env_settings), _Shadowed(dotenv_settings), _Shadowed(toml))

    @property
    def heartbeat_s(self) -> float:
        return self.heartbeat_interval or self.lease_timeout / 3

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            delay_s=self.retry_delay,
            backoff=self.retry_backoff,
            max_delay_s=self.retry_max_delay,
            jitter=self.retry_jitter,
            exception_attempts=dict(self.exception_retries),
        )


class _Shadowed(PydanticBaseSettingsSource):
    """A source whose tables (allowed_jobs, exception_retries) give way whole to a higher source's.

    pydantic-settings deep-merges dicts across sources, so ERRANDS_ALLOWED_JOBS would only add to the
    allow-list in errands.toml; overriding a key must replace it, above all the allow-list.
    """

    def __init__(self, inner: PydanticBaseSettingsSource) -> None:
        super().__init__(inner.settings_cls)
        self._inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        higher = self.current_state  # what the sources above this one set
        return {
            key: value
            for key, value in self._inner().items()
            if not (isinstance(value, dict) and isinstance(higher.get(key), dict))
        }


class _StrictToml(TomlConfigSettingsSource):
    """errands.toml is ours alone, so an unknown key there is a mistake worth stopping for."""

    def __call__(self) -> dict[str, Any]:
        for key in self.toml_data:
            if key not in Settings.model_fields:
                raise ConfigError(key, f"unknown key in {config_path()}")
        return super().__call__()


_FIELD_BY_ALIAS = {
    str(alias).upper(): name
    for name, info in Settings.model_fields.items()
    if isinstance(info.validation_alias, AliasChoices)
    for alias in info.validation_alias.choices
}


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE)


def load_settings(**overrides: Any) -> Settings:
    """Read the configuration; any problem becomes one ConfigError naming the key (or the file)."""
    path = config_path()
    if os.environ.get(CONFIG_ENV) and not path.is_file():
        raise ConfigError(CONFIG_ENV, f"no config file at {path}")
    for source in (path, Path(DOTENV_FILE)):
        _check_text_file(source)
    try:
        settings = Settings(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    except SettingsError as exc:  # a table given as a variable that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        raise ConfigError(field[1] if field else "settings", "not valid JSON (in the environment or .env)") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(part) for part in first["loc"]]
        if loc:  # an aliased field reports its first alias (ERRANDS_MAX_RETRIES) whatever source set it
            loc[0] = _FIELD_BY_ALIAS.get(loc[0].upper(), loc[0])
        key = ".".join(loc) or "settings"
        raise ConfigError(key, first["msg"]) from None
    _check_log_file("log_file", settings.log_file)
    _check_log_file("error_log_file", settings.error_log_file)
    return settings


def _check_text_file(path: Path) -> None:
    """A config file that exists must be readable UTF-8 text (TOML and .env both are)."""
    if not path.exists():
        return
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read it: {exc.strerror or exc}") from None


def _check_log_file(key: str, path: Path) -> None:
    """Fail now, before anything is stored, rather than at the first log line after a job is recorded.
    An existing file gets a write of nothing, which a full device (/dev/full) already refuses."""
    try:
        if path.is_dir():
            raise ConfigError(key, f"{path} is a directory")
        if path.exists():
            handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)  # a FIFO with no reader: ENXIO
            try:
                os.write(handle, b"")
            finally:
                os.close(handle)
            return
        folder = next(parent for parent in path.absolute().parents if parent.exists())
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ConfigError(key, f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(key, f"cannot create {path}: {folder} is not a writable directory")
