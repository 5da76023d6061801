"""Settings every MasterTrade service reads, under the seed's environment variable names.

`ServiceSettings` holds what all services share (connection URLs, logging); each service
subclasses it with its own figures. `load_settings` turns the environment into a typed object
once, at start-up, and turns any validation failure into a `SettingsError` whose message names
each offending variable and what it expects.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import TypeVar, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from mastertrade_model.settings import LoggingSettings
from mastertrade_model.values import Dependency

SettingsT = TypeVar("SettingsT", bound="ServiceSettings")

URL_SCHEMES: Mapping[Dependency, tuple[str, ...]] = {
    Dependency.DATABASE: ("postgresql", "postgres"),
    Dependency.RABBITMQ: ("amqp", "amqps"),
    Dependency.REDIS: ("redis", "rediss", "unix"),
}

URL_VARIABLES: Mapping[Dependency, str] = {
    Dependency.DATABASE: "DATABASE_URL",
    Dependency.RABBITMQ: "RABBITMQ_URL",
    Dependency.REDIS: "REDIS_URL",
}


def redact(text: str) -> str:
    """Hide the password of any URL in `text` (user:password@ -> user:***@), also with no user
    (redis://:password@) and with an `@` left unencoded in the password (up to the last `@`
    before the host)."""
    return re.sub(r"(://[^:/@\s]*:)[^\s/]*@", r"\1***@", text)


class SettingsError(Exception):
    """The environment does not describe a valid configuration; the message says why."""


def _check_url(value: str | None, dependency: Dependency) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    schemes = URL_SCHEMES[dependency]
    if parts.scheme not in schemes or not (parts.hostname or parts.path):
        expected = " or ".join(f"{scheme}://" for scheme in schemes)
        raise ValueError(f"expected a URL starting with {expected} and naming a host")
    return value


class AccountSettings(BaseModel):
    """The asset the trading account is kept in: the executor books cash and values positions
    in it, and strategy_service trades only the symbols quoted in it (one definition for both)."""

    quote_asset: str = Field(
        default="USDT", pattern=r"^[A-Z0-9]{2,10}$", description="the account's cash asset"
    )


class ServiceSettings(BaseSettings, LoggingSettings):
    """What every service reads. Names are the seed's; they are matched case-insensitively.

    The settings the chart also sets (LOG_LEVEL, LOG_FORMAT here; each service's own groups in
    its subclass) are inherited from the model's groups (`mastertrade_model.settings`), where
    their type, default, bounds and description are defined once.
    """

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", frozen=True, populate_by_name=True
    )

    database_url: str | None = Field(
        default=None,
        description="a PostgreSQL URL, e.g. postgresql://user:password@postgres:5432/mastertrade",
    )
    rabbitmq_url: str | None = Field(
        default=None, description="an AMQP URL, e.g. amqp://user:password@rabbitmq:5672/"
    )
    redis_url: str | None = Field(
        default=None, description="a Redis URL, e.g. redis://redis:6379/0"
    )
    reconnect_max_backoff: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="the longest pause between reconnection attempts, in seconds (0 < s <= 300)",
    )
    dependency_timeout: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="how long a health check waits for a dependency, in seconds (0 < s <= 60)",
    )

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        return _check_url(value, Dependency.DATABASE)

    @field_validator("rabbitmq_url")
    @classmethod
    def _rabbitmq_url(cls, value: str | None) -> str | None:
        return _check_url(value, Dependency.RABBITMQ)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        return _check_url(value, Dependency.REDIS)

    upstreams: dict[str, str] = Field(
        default_factory=dict,
        description="the URL of each MasterTrade service this one calls, by its seed name; "
        "read from the variables the workload catalog's `serviceUrls` names",
    )

    def url_for(self, dependency: Dependency) -> str | None:
        """The configured URL of a dependency, or None when it is not set."""
        urls = {
            Dependency.DATABASE: self.database_url,
            Dependency.RABBITMQ: self.rabbitmq_url,
            Dependency.REDIS: self.redis_url,
        }
        return urls[dependency]


def field_names(cls: type[ServiceSettings]) -> dict[str, str]:
    """Lower-cased field name or seed name (alias) -> the field's name."""
    names: dict[str, str] = {}
    for name, info in cls.model_fields.items():
        names[name.lower()] = name
        if info.alias:
            names[info.alias.lower()] = name
    return names


def _info(cls: type[ServiceSettings], field_name: str) -> FieldInfo | None:
    return cls.model_fields.get(field_names(cls).get(field_name.lower(), field_name))


def _describe(cls: type[ServiceSettings], field_name: str) -> str:
    info = _info(cls, field_name)
    return info.description if info is not None and info.description else ""


def _shown(cls: type[ServiceSettings], field_name: str, value: object) -> str:
    info = _info(cls, field_name)
    annotation = info.annotation if info is not None else None
    if annotation is SecretStr or SecretStr in get_args(annotation):
        return "a hidden value"
    return repr(redact(str(value))) if isinstance(value, str) else repr(value)


def build_error_message(service: str, cls: type[ServiceSettings], error: ValidationError) -> str:
    """One line per invalid variable: its name, the value given, what was wrong and expected."""
    lines = [f"invalid settings for {service}:"]
    for item in error.errors():
        reason = str(item["msg"]).removeprefix("Value error, ")
        if not item["loc"]:
            lines.append(f"  {reason}")
            continue
        field_name = str(item["loc"][0])
        shown = _shown(cls, field_name, item.get("input"))
        given = "missing" if item["type"] == "missing" else f"got {shown}"
        expected = _describe(cls, field_name)
        line = f"  {field_name.upper()}: {given}: {reason}"
        lines.append(f"{line} (expected {expected})" if expected else line)
    return "\n".join(lines)


def _missing_urls(settings: ServiceSettings, required: Iterable[Dependency]) -> list[str]:
    lines = []
    for dependency in required:
        if settings.url_for(dependency) is None:
            variable = URL_VARIABLES[dependency]
            expected = _describe(type(settings), variable.lower())
            lines.append(f"  {variable}: missing: required by this service (expected {expected})")
    return lines


def read_upstreams(
    service: str, variables: Mapping[str, str], environ: Mapping[str, str]
) -> dict[str, str]:
    """Service name -> URL for each upstream variable that is set; SettingsError naming each
    variable that is not an http(s) URL."""
    found = {variables[name]: environ[name] for name in variables if environ.get(name)}
    wrong = [
        f"  {name}: got {environ[name]!r}: not an http:// or https:// URL "
        f"(expected the URL of {variables[name]}, e.g. http://host:port)"
        for name in variables
        if environ.get(name) and urlsplit(environ[name]).scheme not in ("http", "https")
    ]
    if wrong:
        raise SettingsError("\n".join([f"invalid settings for {service}:", *wrong]))
    return found


def load_settings(
    cls: type[SettingsT],
    service: str,
    required: Iterable[Dependency] = (),
    environ: Mapping[str, str] | None = None,
    upstreams: Mapping[str, str] | None = None,
) -> SettingsT:
    """Read and validate `cls` from the environment (or `environ`), or raise SettingsError.

    `upstreams` maps variables to the services whose URLs they hold (`ServiceSpec.
    upstream_variables`); the URLs found are the settings' `upstreams`."""
    try:
        if environ is None:
            settings = cls()
        else:
            names = field_names(cls)
            known = {
                names[key.lower()]: value for key, value in environ.items() if key.lower() in names
            }
            settings = cls.model_validate(known)
    except ValidationError as error:
        raise SettingsError(build_error_message(service, cls, error)) from None
    missing = _missing_urls(settings, required)
    if missing:
        raise SettingsError("\n".join([f"invalid settings for {service}:", *missing]))
    found = read_upstreams(service, upstreams or {}, os.environ if environ is None else environ)
    return settings.model_copy(update={"upstreams": found}) if found else settings
