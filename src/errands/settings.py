"""The one Settings object; the only module that reads the environment.

Precedence, highest first: ERRANDS_* variables, the seed's JOB_* variables, a .env file in the working
directory, errands.toml (or the file ERRANDS_CONFIG names), then the defaults below.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from errands.errors import ConfigError
from errands.retry import Backoff, RetryPolicy

DEFAULT_DATABASE_URL = "sqlite:///errands.db"
DEFAULT_CONFIG_FILE = "errands.toml"
CONFIG_ENV = "ERRANDS_CONFIG"


def _seed_alias(name: str) -> Any:
    """ERRANDS_<NAME> wins over the seed's JOB_<NAME>; errands.toml uses the field's name (populate_by_name).
    The bare name is no alias: it would make a MAX_RETRIES variable (or .env line) of the application ours."""
    return AliasChoices(f"ERRANDS_{name.upper()}", f"JOB_{name.upper()}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ERRANDS_",
        env_file=".env",
        extra="ignore",  # a .env file is shared with the application: its other keys are not ours
        populate_by_name=True,
        case_sensitive=False,
    )

    database_url: str = DEFAULT_DATABASE_URL
    allowed_jobs: dict[str, list[str]] = Field(default_factory=dict)
    max_retries: int = Field(3, ge=1, validation_alias=_seed_alias("max_retries"))
    retry_delay: float = Field(10.0, ge=0, validation_alias=_seed_alias("retry_delay"))
    retry_backoff: Backoff = Backoff.FIXED
    retry_max_delay: float = Field(3600.0, ge=0)
    retry_jitter: bool = True
    default_priority: int = Field(1, validation_alias=_seed_alias("default_priority"))
    exception_retries: dict[str, int] = Field(default_factory=dict)
    timeout: float | None = Field(None, gt=0)
    log_file: Path = Path("logs/background_jobs.log")
    error_log_file: Path = Path("logs/background_jobs_errors.log")
    # the worker and leases
    lease_timeout: float = Field(30.0, gt=0)
    heartbeat_interval: float | None = Field(None, gt=0)
    rescue_interval: float = Field(10.0, gt=0)
    crash_budget: int = Field(2, ge=1)
    poll_interval: float = Field(1.0, gt=0, le=60)
    grace: float = Field(30.0, ge=0)
    max_jobs_per_child: int = Field(100_000, ge=1)  # a guard against leaky job code; a respawn costs ~0.2 s of CPU
    dispatch: Literal["spawn", "queue"] = "spawn"

    @field_validator("exception_retries")
    @classmethod
    def _positive_attempts(cls, value: dict[str, int]) -> dict[str, int]:
        for name, attempts in value.items():
            if attempts < 1:
                raise ValueError(f"{name} must allow at least 1 attempt")
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
    """Read the configuration; any problem becomes one ConfigError naming the key."""
    path = config_path()
    if os.environ.get(CONFIG_ENV) and not path.is_file():
        raise ConfigError(CONFIG_ENV, f"no config file at {path}")
    try:
        return Settings(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(part) for part in first["loc"]]
        if loc:  # an aliased field reports its first alias (ERRANDS_MAX_RETRIES) whatever source set it
            loc[0] = _FIELD_BY_ALIAS.get(loc[0].upper(), loc[0])
        key = ".".join(loc) or "settings"
        raise ConfigError(key, first["msg"]) from None
