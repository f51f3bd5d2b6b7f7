"""Settings read once from the environment (`POKAZY_*`), validated, secrets masked.

Three layers, each what its user needs: `KafkaSettings` (a bot's SDK), `BillingSettings` (+ the
control key, billing's SDK) and `Settings` (the worker and the tools: everything).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Self
from urllib.parse import unquote_plus

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.errors import ConfigError

DEVELOPMENT_SENDER_HASH_KEY = "pokazy-development-key"
DEVELOPMENT_CONTROL_KEY = "pokazy-development-control-key"

_TOPIC_PREFIX_RE = re.compile(r"^[A-Za-z0-9._-]*$")
_DATABASE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# URL query parameters that carry a secret (`?password=…`, `?access_token=…`): masked in logs.
_SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)


# The largest message the worker decodes. The largest submission within the string limits of
# `streams.domain.model` is under 14 KB of Avro; registry events and close requests are far
# smaller. Kafka's own default (1 MB) would let one message cost a thousand times that.
DEFAULT_MAX_MESSAGE_BYTES = 16_384


class KafkaSettings(BaseSettings):
    """What any Kafka client of pokazy needs: the brokers, the login, the topics' prefix.

    All a bot's SDK reads (`POKAZY_KAFKA_*`, `POKAZY_TOPIC_PREFIX`); billing's adds the control
    key (`BillingSettings`), the worker everything else (`Settings`).
    """

    model_config = SettingsConfigDict(env_prefix="POKAZY_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    topic_prefix: str = "pokazy."

    @field_validator(
        "kafka_sasl_mechanism",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `POKAZY_KAFKA_SSL_CAFILE=` means "none" (the system's CAs), not the current directory.
        return None if value == "" else value

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        if not _TOPIC_PREFIX_RE.match(value):
            raise ValueError("use only letters, digits, '.', '_' and '-'")
        return value

    @classmethod
    def from_env(cls) -> Self:
        """Read the environment, reporting every invalid variable at once as a `ConfigError`."""
        try:
            settings = cls()
        except ValidationError as exc:
            problems = "; ".join(
                f"POKAZY_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
                for e in exc.errors()
            )
            raise ConfigError(f"invalid settings: {problems}") from exc
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse what no client could work with (`from_env` calls it)."""
        self.check_kafka_security()

    def check_kafka_security(self) -> None:
        """Refuse a SASL protocol without its credentials.

        TLS files are read when a client needs them (`streams.adapters.kafka_security.ssl_context`):
        `stack up --tls` is what makes the local CA file in the first place.
        """
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ConfigError(
                f"POKAZY_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "POKAZY_KAFKA_SASL_USERNAME and POKAZY_KAFKA_SASL_PASSWORD"
            )

    def topic(self, name: str) -> str:
        """The full name of one of pokazy's topics (readings, registry, replies)."""
        return f"{self.topic_prefix}{name}"

    def kafka_client_options(self) -> dict[str, object]:
        """Security options in kafka-python / aiokafka spelling (both use the same names)."""
        options: dict[str, object] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.kafka_sasl_mechanism or "SCRAM-SHA-256"
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        if self.kafka_security_protocol.endswith("SSL"):
            options["ssl_cafile"] = str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None
            options["ssl_certfile"] = (
                str(self.kafka_ssl_certfile) if self.kafka_ssl_certfile else None
            )
            options["ssl_keyfile"] = str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None
        return options


class BillingSettings(KafkaSettings):
    """Billing's publisher: Kafka, and the key that signs its close requests and replays."""

    # Billing signs period-close requests with it; workers obey only signed ones.
    control_key: SecretStr = SecretStr(DEVELOPMENT_CONTROL_KEY)


class Settings(BillingSettings):
    """Everything configurable, with safe local defaults."""

    environment: Literal["development", "production"] = "development"
    partitions: int = Field(default=4, ge=1, le=1024)
    topic_replication: int = Field(default=1, ge=1, le=7)
    data_dir: Path = Path(".pokazy")

    clickhouse_url: SecretStr | None = None
    clickhouse_database: str = "pokazy"

    sender_hash_key: SecretStr = SecretStr(DEVELOPMENT_SENDER_HASH_KEY)

    web_port: int = Field(default=6066, ge=1, le=65535)
    web_bind: str = "127.0.0.1"

    # Sink batching: rows are inserted when a batch is full or this old, and only then are the
    # source offsets acknowledged. Smaller means lower latency, larger means fewer inserts.
    sink_batch_rows: int = Field(default=5000, ge=1)
    sink_flush_interval: float = Field(default=0.5, gt=0)
    commit_interval: float = Field(default=1.0, gt=0)
    # How long the group waits for a silent worker before moving its partitions elsewhere:
    # the time a SIGKILLed worker's partitions stay unprocessed.
    kafka_session_timeout: float = Field(default=10.0, ge=6, le=300)
    table_store: str = "memory://"
    # Outage drills: while this file exists, the worker's ClickHouse inserts fail.
    fault_clickhouse_flag: Path | None = None
    # Crash drills: while this file exists, each insert is written and then does not return,
    # as if ClickHouse took the rows and never answered; the worker writes the table's name into
    # the file when it starts holding, so a drill knows when to kill it (`ClickHouse.insert`).
    fault_clickhouse_hold: Path | None = None
    # /health turns 503 when input waits and nothing was completed for this long.
    stall_timeout: float = Field(default=120.0, gt=0)
    # Close each period automatically once its window has ended (checked on the leader
    # worker every `auto_close_check_interval` seconds, by Kyiv local date; no cron involved).
    auto_close: bool = False
    auto_close_check_interval: float = Field(default=3600.0, gt=0)
    # The largest message the worker decodes; a larger one is a MALFORMED rejection that keeps
    # only the payload's first 1 KiB. Valid submissions are under 14 KB (README "Limits").
    max_message_bytes: int = Field(default=DEFAULT_MAX_MESSAGE_BYTES, ge=1024, le=1_048_576)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("clickhouse_database")
    @classmethod
    def _database(cls, value: str) -> str:
        if not _DATABASE_RE.match(value):
            raise ValueError("a ClickHouse database name is letters, digits and '_'")
        return value

    def check(self) -> None:
        super().check()
        self.check_production()

    def check_production(self) -> None:
        """Refuse the development defaults where they would leak or mislead in production."""
        if self.environment != "production":
            return
        problems = []
        if self.sender_hash_key.get_secret_value() == DEVELOPMENT_SENDER_HASH_KEY:
            problems.append(
                "POKAZY_SENDER_HASH_KEY must be set: the development key would make chat ids "
                "recoverable"
            )
        if self.control_key.get_secret_value() == DEVELOPMENT_CONTROL_KEY:
            problems.append(
                "POKAZY_CONTROL_KEY must be set: with the development key anyone could close "
                "a billing period"
            )
        if self.fault_clickhouse_flag is not None or self.fault_clickhouse_hold is not None:
            problems.append(
                "POKAZY_FAULT_CLICKHOUSE_FLAG and POKAZY_FAULT_CLICKHOUSE_HOLD are fault drills "
                "and must not be set"
            )
        if problems:
            raise ConfigError("in production, " + "; ".join(problems))

    @property
    def app_id(self) -> str:
        """The faust app id, which is also the consumer group."""
        return f"{self.topic_prefix}worker"

    @property
    def clickhouse_dsn(self) -> str:
        """The ClickHouse URL with its secret, for the client only; never log it."""
        if self.clickhouse_url is not None:
            return self.clickhouse_url.get_secret_value()
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def clickhouse_display(self) -> str:
        """The ClickHouse URL with any password masked, for logs and messages."""
        return mask_url(self.clickhouse_dsn)

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_dsn.startswith("chdb://")


def mask_url(url: str) -> str:
    """The URL with every secret replaced by `***`, for logs and messages.

    Secrets are the password of `user:pass@host` and any query parameter whose name says it
    holds one (`?password=…`, `?access_token=…`); the rest is kept as written. The text is cut
    by hand rather than parsed: a password with an unescaped `/`, `#` or `@` would make a URL
    parser read part of it as the host or path, and print it.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    userinfo, at, location = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.partition(':')[0]}:***@{location}"
    path, question, query = rest.partition("?")
    if question:
        query, hash_, fragment = query.partition("#")
        query = "&".join(
            f"{name}=***" if _SECRET_PARAMETER.search(unquote_plus(name)) else f"{name}{eq}{value}"
            for name, eq, value in (item.partition("=") for item in query.split("&"))
        )
        rest = f"{path}?{query}{hash_}{fragment}"
    return f"{scheme}{separator}{rest}"
