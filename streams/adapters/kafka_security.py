"""How every pokazy client reaches a secured Kafka: its options per library, and a login check.

The SDK, the CLI and the admin calls use kafka-python; the worker uses faust, which uses
aiokafka. Both are given the same settings here. Neither library tells an operator that a
password is wrong: kafka-python 3.0 retries a refused SASL login like any failed connection
until its bootstrap timeout and then says only "Unable to bootstrap" (`_do_bootstrap` in
`kafka/net/manager.py`), and aiokafka logs the refusal and raises a bare "Unable to bootstrap"
connection error. `check_login` therefore opens one connection with the configured security
before a client is built, and turns a definite answer from the broker (wrong credentials, a
mechanism it does not offer, a certificate that is not trusted, a listener that speaks another
protocol) into a one-line `ConfigError` within a second. A broker that cannot be reached at all
is left to the clients' own retries: that is `BrokerUnavailable`, and waiting may cure it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

from aiokafka import errors as aiokafka_errors
from aiokafka.conn import create_conn
from aiokafka.protocol.metadata import MetadataRequest
from kafka.errors import KafkaError

from streams.errors import BrokerUnavailable, ConfigError
from streams.settings import KafkaSettings

Client = TypeVar("Client")

# How long one broker may take to answer the login check before it counts as unreachable.
LOGIN_CHECK_TIMEOUT = 10.0


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL: the configured CA (else the system's), client cert.

    Hostnames are checked, so a broker's certificate must name the address clients dial.
    """
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    cafile, certfile, keyfile = (
        str(path) if path else None
        for path in (
            settings.kafka_ssl_cafile,
            settings.kafka_ssl_certfile,
            settings.kafka_ssl_keyfile,
        )
    )
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"POKAZY_KAFKA_SSL_CAFILE={cafile}: cannot load it ({exc})") from exc
    if certfile:
        try:
            context.load_cert_chain(certfile, keyfile=keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"POKAZY_KAFKA_SSL_CERTFILE={certfile} / POKAZY_KAFKA_SSL_KEYFILE={keyfile}: "
                f"cannot load the client certificate ({exc})"
            ) from exc
    return context


def aiokafka_options(settings: KafkaSettings) -> dict[str, Any]:
    """Security options in aiokafka's spelling: TLS files become an SSL context."""
    options: dict[str, Any] = {
        key: value
        for key, value in settings.kafka_client_options().items()
        if not key.startswith("ssl_")
    }
    options["ssl_context"] = ssl_context(settings)
    return options


def faust_credentials(settings: KafkaSettings) -> Any:
    """faust's credentials object for the configured security protocol (None for plaintext)."""
    import faust

    context = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL"):
        options = aiokafka_options(settings)
        return faust.SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            mechanism=options["sasl_mechanism"],
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def kafka_python_client(
    factory: Callable[..., Client], settings: KafkaSettings, **options: Any
) -> Client:
    """A kafka-python producer, consumer or admin client with the configured security.

    The login is checked first, so a wrong password is a `ConfigError` at once rather than a
    bootstrap timeout; a broker that stays unreachable is a `BrokerUnavailable`.
    """
    check_login(settings)
    try:
        return factory(
            bootstrap_servers=settings.kafka_bootstrap.split(","),
            **settings.kafka_client_options(),
            **options,
        )
    except KafkaError as exc:
        raise BrokerUnavailable(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}") from exc


def check_login(settings: KafkaSettings, timeout: float = LOGIN_CHECK_TIMEOUT) -> None:
    """Raise `ConfigError` if a broker definitely refuses these settings; else return.

    The bootstrap brokers are tried in turn until one answers. Runs on a thread of its own, so
    it works the same whether or not the caller is inside an event loop (an async bot).
    """
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pokazy-login") as pool:
        pool.submit(asyncio.run, _check_brokers(settings, timeout)).result()


async def _check_brokers(settings: KafkaSettings, timeout: float) -> None:
    for address in settings.kafka_bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            async with asyncio.timeout(timeout):
                if await _check_broker(settings, host, int(port)):
                    return
        except TimeoutError:
            continue


async def _check_broker(settings: KafkaSettings, host: str, port: int) -> bool:
    """True if the broker accepted the login and served metadata; False if it did not answer."""
    where = f"Kafka at {host}:{port}"
    protocol = settings.kafka_security_protocol
    options = aiokafka_options(settings)
    try:
        connection = await create_conn(host, port, client_id="pokazy-login-check", **options)
    except (aiokafka_errors.SaslAuthenticationFailed, aiokafka_errors.AuthenticationFailedError):
        raise ConfigError(
            f"{where} refused the login of user {settings.kafka_sasl_username!r} "
            f"({options['sasl_mechanism']}): authentication failed; check "
            "POKAZY_KAFKA_SASL_USERNAME and POKAZY_KAFKA_SASL_PASSWORD"
        ) from None
    except aiokafka_errors.UnsupportedSaslMechanismError:
        raise ConfigError(
            f"{where} does not offer SASL mechanism {options['sasl_mechanism']}: "
            "set POKAZY_KAFKA_SASL_MECHANISM to one it does"
        ) from None
    except aiokafka_errors.IllegalSaslStateError:
        raise ConfigError(
            f"{where} does not expect a SASL login on this listener: "
            f"POKAZY_KAFKA_SECURITY_PROTOCOL={protocol} does not match the broker"
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise ConfigError(
            f"{where} presented a TLS certificate this client does not trust "
            f"({exc.verify_message}): set POKAZY_KAFKA_SSL_CAFILE to the CA that signed it"
        ) from None
    except ssl.SSLError as exc:
        raise ConfigError(
            f"the TLS handshake with {where} failed ({exc.reason or exc}): does its listener "
            f"speak POKAZY_KAFKA_SECURITY_PROTOCOL={protocol}?"
        ) from None
    except ConnectionResetError:
        # A listener without TLS reads a TLS hello as a request of absurd size and hangs up.
        if protocol.endswith("SSL"):
            raise ConfigError(
                f"{where} hung up during the TLS handshake, as a listener without TLS does: "
                f"POKAZY_KAFKA_SECURITY_PROTOCOL={protocol} does not match it"
            ) from None
        return False
    except aiokafka_errors.KafkaConnectionError:
        # Every Kafka listener answers ApiVersions; closing the connection instead is what a
        # TLS listener does to a plaintext client.
        if protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
            raise ConfigError(
                f"{where} closed the connection before answering ApiVersions, as a TLS "
                f"listener does: POKAZY_KAFKA_SECURITY_PROTOCOL={protocol} does not match it "
                "(SSL or SASL_SSL?)"
            ) from None
        return False
    except (OSError, aiokafka_errors.KafkaError):
        return False
    try:
        await connection.send(MetadataRequest([]))
    except aiokafka_errors.KafkaConnectionError:
        # A SASL listener serves nothing but ApiVersions and the handshake before a login.
        if not protocol.startswith("SASL"):
            raise ConfigError(
                f"{where} closed the connection when asked for metadata without a login: "
                f"it requires authentication, and POKAZY_KAFKA_SECURITY_PROTOCOL={protocol} "
                "(set SASL_PLAINTEXT or SASL_SSL and POKAZY_KAFKA_SASL_USERNAME/_PASSWORD)"
            ) from None
        return False
    finally:
        connection.close()
    return True
