"""The local Apache Kafka broker: fetched from Maven Central, run as a single KRaft node.

There is no Docker on the machines pokazy is developed and tested on, so the project runs a real
broker from the jars that `pom.xml` names: `fetch()` copies them once into a cache shared by every
checkout, `up()` formats the KRaft storage once and starts `kafka.Kafka` detached in its own
session (it outlives the command that started it), `down()` stops it and keeps the data.

Layout under `data_dir/kafka/`: `server.properties`, `log4j2.properties`, `kafka.log` (the broker's
output; the previous run's is `kafka.log.1`), `broker.pid`, `format.json` (how the storage was
formatted), `data/` (the KRaft metadata log and the topic partitions) and, with TLS, `tls/` (a
private CA, `tls/ca.pem`, which clients trust, and the broker's key and certificate it signed).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from cryptography.hazmat.primitives import serialization
from kafka.errors import KafkaError
from kafka.protocol.metadata import ApiVersionsRequest, MetadataRequest
from kafka.protocol.parser import KafkaProtocol

from streams.errors import ConfigError, PokazyError
from streams.settings import Settings

POM = Path(__file__).resolve().parents[2] / "pom.xml"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
HOST = "127.0.0.1"
NODE_ID = 1

# SCRAM credentials travel through `--add-scram` and a JAAS line in server.properties; these
# characters would need quoting in one or the other, so they are refused rather than escaped.
_CREDENTIAL = re.compile(r"[A-Za-z0-9._~!@#%^&*()+:;?/-]+")
_LOG_TAIL_LINES = 40
_METADATA_VERSION = 4

# The console is kafka.log (so the JVM's own errors land there too). Kafka's INFO is thousands
# of lines per start and one per partition change: keep its warnings, the "started" line and
# failed client authentications (the Selector's only INFO line).
# log4j's shutdown hook is off because Kafka stops its loggers itself.
_LOG4J2_PROPERTIES = """\
status = warn
shutdownHook = disable
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
logger.auth.name = org.apache.kafka.common.network.Selector
logger.auth.level = INFO
"""


class LocalKafkaError(PokazyError):
    """The local broker could not be fetched, formatted, started or stopped; says why."""


@dataclass(frozen=True)
class BrokerStatus:
    """What a caller can check about the local broker without touching it."""

    running: bool
    pid: int | None
    bootstrap: str
    answering: bool
    data_dir: Path
    version: str


def kafka_version(pom: Path = POM) -> str:
    """The Kafka release that `pom.xml` pins (its `kafka.version` property)."""
    try:
        root = ET.parse(pom).getroot()
    except (OSError, ET.ParseError) as exc:
        raise LocalKafkaError(f"cannot read the Kafka version from {pom}: {exc}") from exc
    version = root.findtext(
        "{http://maven.apache.org/POM/4.0.0}properties/"
        "{http://maven.apache.org/POM/4.0.0}kafka.version"
    )
    if not version:
        raise LocalKafkaError(f"{pom} has no <properties><kafka.version>")
    return version.strip()


def default_jar_cache(version: str) -> Path:
    """Where the jars of one Kafka release live, shared by every checkout and run."""
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_home / "pokazy" / f"kafka-{version}" / "libs"


class LocalKafka:
    """One single-node Kafka (broker and KRaft controller in one JVM) on 127.0.0.1.

    With `secure=True` the client listener is SASL_PLAINTEXT with SCRAM-SHA-256, and the one
    user (`sasl_username`, `sasl_password`) is created when the storage is formatted. With
    `tls=True` it speaks TLS (SSL, or SASL_SSL when also secure) with a certificate for
    127.0.0.1 signed by a CA made for this data dir, `ca_file`, the first time it starts so.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 9092,
        controller_port: int = 9093,
        jar_cache: Path | None = None,
        heap: str = "512m",
        secure: bool = False,
        tls: bool = False,
        sasl_username: str | None = None,
        sasl_password: str | None = None,
    ) -> None:
        if port == controller_port:
            raise ConfigError(f"port and controller_port must differ (both {port})")
        if secure:
            for name, value in (("sasl_username", sasl_username), ("sasl_password", sasl_password)):
                if not value or not _CREDENTIAL.fullmatch(value):
                    raise ConfigError(
                        f"{name}: required when secure, and limited to letters, digits and "
                        "-._~!@#%^&*()+:;?/ (no quotes, backslashes, commas, brackets, '=' "
                        "or spaces)"
                    )
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.secure = secure
        self.tls = tls
        self.sasl_username = sasl_username if secure else None
        self._sasl_password = sasl_password if secure else None
        self.version = kafka_version()
        self.jar_cache = (jar_cache or default_jar_cache(self.version)).resolve()
        self.home = self.data_dir / "kafka"
        self.server_properties = self.home / "server.properties"
        self.log4j_properties = self.home / "log4j2.properties"
        self.log_file = self.home / "kafka.log"
        self.pid_file = self.home / "broker.pid"
        self.log_dir = self.home / "data"
        self._format_record = self.home / "format.json"
        self.tls_dir = self.home / "tls"
        self.ca_file = self.tls_dir / "ca.pem"
        self._keystore = self.tls_dir / "broker-keystore.pem"

    @property
    def security_protocol(self) -> str:
        """The client listener's protocol, as clients name it (POKAZY_KAFKA_SECURITY_PROTOCOL)."""
        return _protocol(sasl=self.secure, tls=self.tls)

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients use."""
        return f"{HOST}:{self.port}"

    def fetch(self) -> Path:
        """Copy the broker's jars into the cache unless a complete copy is there; returns it.

        The copy goes to a side directory and is renamed into place, and the marker (the digest
        of the pom it came from) is written last, so an interrupted or outdated fetch is redone.
        """
        libs = self.jar_cache
        marker = libs / ".complete"
        wanted = hashlib.sha256(POM.read_bytes()).hexdigest()
        if _read_text(marker) == wanted:
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalKafkaError(
                "mvn not found on PATH: Maven 3.8+ is needed once, to fetch the Kafka jars "
                f"into {libs} (Debian/Ubuntu: apt-get install maven)"
            )
        self._java()
        libs.parent.mkdir(parents=True, exist_ok=True)
        with _locked(libs.parent / ".fetch.lock"):
            if _read_text(marker) == wanted:
                return libs
            partial = libs.with_name(libs.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            command = [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM),
                f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={partial}",
            ]
            try:
                result = subprocess.run(
                    command, capture_output=True, text=True, timeout=900, check=False
                )
            except subprocess.TimeoutExpired as exc:
                message = "mvn did not finish fetching the Kafka jars in 15 min"
                raise LocalKafkaError(message) from exc
            if result.returncode != 0:
                output = (result.stdout + result.stderr).strip().splitlines()
                raise LocalKafkaError(
                    f"mvn could not fetch the Kafka {self.version} jars (exit "
                    f"{result.returncode}):\n" + "\n".join(output[-_LOG_TAIL_LINES:])
                )
            if not (partial / f"kafka_2.13-{self.version}.jar").is_file():
                raise LocalKafkaError(f"mvn finished but {partial} has no kafka_2.13 jar")
            shutil.rmtree(libs, ignore_errors=True)
            partial.rename(libs)
            marker.write_text(wanted)
        return libs

    def status(self) -> BrokerStatus:
        """Whether our broker process runs and whether it answers on the client listener."""
        pid = self._running_pid()
        return BrokerStatus(
            running=pid is not None,
            pid=pid,
            bootstrap=self.bootstrap,
            answering=pid is not None and self._answers(timeout=2.0),
            data_dir=self.data_dir,
            version=self.version,
        )

    def up(self, timeout: float = 90) -> BrokerStatus:
        """Start the broker unless it already runs; return once it answers clients.

        Raises LocalKafkaError, with the tail of kafka.log, if it dies or does not answer within
        `timeout` seconds (a broker this call started is then stopped again).
        """
        started_at = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        with _locked(self.home / ".lock"):
            pid = self._running_pid()
            if pid is not None:
                return self._wait_until_answering(pid, None, started_at + timeout)
            for port in (self.port, self.controller_port):
                _ensure_port_free(port)
            libs = self.fetch()
            if self.tls:
                self._ensure_certificates()
            self._write_config()
            self._format_storage(libs)
            process = self._spawn(libs)
            return self._wait_until_answering(process.pid, process, started_at + timeout)

    def down(self, timeout: float = 30) -> None:
        """Stop our broker (SIGTERM, then SIGKILL after `timeout` s); keeps the data."""
        if not self.home.is_dir():
            return
        with _locked(self.home / ".lock"):
            self._stop(timeout)

    def _stop(self, timeout: float) -> None:
        pid = self._running_pid()
        if pid is not None:
            # A controlled shutdown lets the next start skip log recovery; SIGKILL is only for
            # a broker that hangs in it.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not self._wait_gone(pid, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                if not self._wait_gone(pid, 10):
                    raise LocalKafkaError(f"broker pid {pid} survived SIGKILL")
        self.pid_file.unlink(missing_ok=True)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._is_our_broker(pid):
                return True
            time.sleep(0.1)
        return not self._is_our_broker(pid)

    def _running_pid(self) -> int | None:
        text = _read_text(self.pid_file)
        if text is None or not text.strip().isdigit():
            return None
        pid = int(text)
        return pid if self._is_our_broker(pid) else None

    def _is_our_broker(self, pid: int) -> bool:
        """True if `pid` is a live kafka.Kafka JVM started on this data dir's server.properties.

        A stale pid file may name a pid the system has since given to another process; this
        keeps down() from signalling it.
        """
        _reap(pid)
        if Path("/proc/self/cmdline").exists():
            try:
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                return False
            args = raw.decode(errors="replace").split("\0")
        else:
            # No procfs (macOS): ask ps instead.
            result = subprocess.run(
                ["ps", "-p", str(pid), "-o", "args="], capture_output=True, text=True, check=False
            )
            args = result.stdout.split()
        return "kafka.Kafka" in args and str(self.server_properties) in args

    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if java is None or not os.access(java, os.X_OK):
            raise LocalKafkaError(
                "java not found (JAVA_HOME or PATH): Kafka 4.x needs a Java 17+ runtime "
                "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless)"
            )
        return java

    def _write_config(self) -> None:
        protocol = self.security_protocol
        settings: dict[str, str | int] = {
            "process.roles": "broker,controller",
            "node.id": NODE_ID,
            # A static quorum (kraft.version 0): the storage is formatted without --standalone.
            "controller.quorum.voters": f"{NODE_ID}@{HOST}:{self.controller_port}",
            "listeners": f"CLIENT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"CLIENT://{HOST}:{self.port}",
            "listener.security.protocol.map": f"CLIENT:{protocol},CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "CLIENT",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.log_dir),
            # One node: every internal topic has one replica and needs only that one in sync.
            "num.partitions": 1,
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            # Consumers join a group at once instead of waiting 3 s for more members.
            "group.initial.rebalance.delay.ms": 0,
            # Sized for a 2-core test machine and a 512 MB heap rather than for throughput.
            "num.network.threads": 2,
            "num.io.threads": 4,
            "background.threads": 4,
            "num.recovery.threads.per.data.dir": 1,
            "log.cleaner.threads": 1,
            "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
            # Test data, not a ledger: a day or 256 MiB per partition, in 16 MiB segments.
            "log.retention.hours": 24,
            "log.retention.bytes": 256 * 1024 * 1024,
            "log.segment.bytes": 16 * 1024 * 1024,
            "log.retention.check.interval.ms": 60_000,
            "offsets.topic.segment.bytes": 16 * 1024 * 1024,
            "transaction.state.log.segment.bytes": 16 * 1024 * 1024,
        }
        if self.secure:
            settings |= {
                "sasl.enabled.mechanisms": "SCRAM-SHA-256",
                "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-256",
                "listener.name.client.scram-sha-256.sasl.jaas.config": (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required "
                    f'username="{self.sasl_username}" password="{self._sasl_password}";'
                ),
            }
        if self.tls:
            # PEM stores (KIP-651): the broker's unencrypted key and chain in one file, and the
            # CA it trusts when it connects to itself over the inter-broker listener.
            settings |= {
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(self._keystore),
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(self.ca_file),
                "ssl.endpoint.identification.algorithm": "https",
            }
        _write_private(
            self.server_properties, "".join(f"{key}={value}\n" for key, value in settings.items())
        )
        _write_private(self.log4j_properties, _LOG4J2_PROPERTIES)

    def _format_storage(self, libs: Path) -> None:
        """Format the KRaft storage the first time; refuse to reuse it with other credentials."""
        wanted = {"secure": self.secure, "credentials": self._credentials_digest()}
        record = _read_json(self._format_record)
        if record is not None and {k: record.get(k) for k in wanted} != wanted:
            raise LocalKafkaError(
                f"{self.log_dir} was formatted with secure={record.get('secure')} and other "
                "SCRAM credentials than asked for now (they live in the KRaft metadata); "
                "use another data dir or delete this one"
            )
        if (self.log_dir / "meta.properties").is_file():
            return
        # The record is written before formatting so that a retry after an interrupted format
        # reuses the same cluster id.
        cluster_id = str(record["cluster_id"]) if record else _random_cluster_id()
        _write_private(self._format_record, json.dumps({"cluster_id": cluster_id, **wanted}))
        command = [
            self._java(),
            "-cp",
            f"{libs}/*",
            f"-Dlog4j2.configurationFile={self.log4j_properties}",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.server_properties),
            "-g",
        ]
        if self.secure:
            command += [
                "--add-scram",
                f"SCRAM-SHA-256=[name={self.sasl_username},password={self._sasl_password}]",
            ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()
            raise LocalKafkaError(
                f"formatting {self.log_dir} failed (exit {result.returncode}):"
                "\n" + "\n".join(output[-_LOG_TAIL_LINES:])
            )

    def _credentials_digest(self) -> str | None:
        if not self.secure:
            return None
        return hashlib.sha256(f"{self.sasl_username}\0{self._sasl_password}".encode()).hexdigest()

    def _spawn(self, libs: Path) -> subprocess.Popen[bytes]:
        command = [
            self._java(),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            # kafka-run-class.sh's GC settings, plus: die on OOM rather than limp on, and no
            # GC log files.
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j_properties}",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(self.server_properties),
        ]
        if self.log_file.exists():
            self.log_file.replace(self.log_file.with_name("kafka.log.1"))
        with self.log_file.open("ab") as log:
            # A new session: the broker is not ours to take down when this process (a CLI
            # command, a test run) exits or its terminal closes.
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        return process

    def _wait_until_answering(
        self, pid: int, started: subprocess.Popen[bytes] | None, deadline: float
    ) -> BrokerStatus:
        """Wait for the broker `pid` to answer; `started` is given if this call started it.

        A broker this call started is watched through its Popen (its /proc cmdline reads empty
        for a moment after exec) and is stopped again if it never answers.
        """
        while True:
            alive = started.poll() is None if started else self._is_our_broker(pid)
            if not alive:
                self.pid_file.unlink(missing_ok=True)
                raise LocalKafkaError(
                    f"the Kafka broker (pid {pid}) exited during start-up; {self._log_tail()}"
                )
            if self._answers(timeout=min(5.0, max(0.5, deadline - time.monotonic()))):
                return self.status()
            if time.monotonic() >= deadline:
                break
            time.sleep(0.25)
        tail = self._log_tail()
        if started:
            self._stop(timeout=10)
        raise LocalKafkaError(
            f"the Kafka broker (pid {pid}) did not answer on {self.bootstrap} in time; {tail}"
        )

    def _answers(self, timeout: float) -> bool:
        """True once the client listener serves requests.

        The broker enables its client listener only after it has caught up with the metadata
        log and been unfenced, so an answer means topics can be created and groups joined.
        Without SASL a Metadata request must also list this node; with SASL only ApiVersions is
        allowed before authenticating. The listener is the one the running broker was
        configured with (a `status()` caller may not know it), over TLS with our CA if it has it.
        """
        protocol = self._running_protocol()
        try:
            with contextlib.ExitStack() as stack:
                sock = stack.enter_context(
                    socket.create_connection((HOST, self.port), timeout=timeout)
                )
                if protocol.endswith("SSL"):
                    context = ssl.create_default_context(cafile=str(self.ca_file))
                    sock = stack.enter_context(context.wrap_socket(sock, server_hostname=HOST))
                # ApiVersions v0: every broker accepts it, before any authentication.
                versions = _exchange(sock, ApiVersionsRequest[0]())
                if versions.error_code != 0:
                    return False
                if protocol.startswith("SASL"):
                    return True
                served = {k.api_key: k for k in versions.api_keys}
                metadata = served[MetadataRequest.API_KEY]
                if not metadata.min_version <= _METADATA_VERSION <= metadata.max_version:
                    raise LocalKafkaError(
                        f"the broker on {self.bootstrap} no longer serves Metadata "
                        f"v{_METADATA_VERSION} (it serves v{metadata.min_version}-"
                        f"v{metadata.max_version})"
                    )
                request = MetadataRequest[_METADATA_VERSION](topics=[])
                return self.port in {broker.port for broker in _exchange(sock, request).brokers}
        except (OSError, KafkaError, KeyError):
            return False

    def _running_protocol(self) -> str:
        """The client listener's protocol in the last written server.properties, else ours."""
        for line in (_read_text(self.server_properties) or "").splitlines():
            key, _, value = line.partition("=")
            if key == "listener.security.protocol.map":
                listeners = dict(item.split(":", 1) for item in value.split(","))
                return listeners.get("CLIENT", self.security_protocol)
        return self.security_protocol

    def _ensure_certificates(self) -> None:
        """Make a CA and a broker certificate for 127.0.0.1 it signed (trustme), unless they
        exist. Only `ca.pem` is meant for clients (POKAZY_KAFKA_SSL_CAFILE); the CA's key is
        not kept, so nothing else can ever be signed by it.
        """
        if self._keystore.is_file() and self.ca_file.is_file():
            return
        ca = trustme.CA(organization_name="pokazy local Kafka CA", key_type=trustme.KeyType.RSA)
        broker = ca.issue_cert(HOST, "localhost", common_name=HOST, key_type=trustme.KeyType.RSA)
        # Kafka's PEM keystore (KIP-651) reads PKCS#8 keys; trustme writes the traditional form.
        key = serialization.load_pem_private_key(broker.private_key_pem.bytes(), password=None)
        pkcs8 = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        chain = "".join(blob.bytes().decode() for blob in broker.cert_chain_pems)
        partial = self.tls_dir.with_name("tls.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(mode=0o700, parents=True)
        ca.cert_pem.write_to_path(str(partial / self.ca_file.name))
        _write_private(partial / self._keystore.name, pkcs8 + chain + ca.cert_pem.bytes().decode())
        shutil.rmtree(self.tls_dir, ignore_errors=True)
        partial.rename(self.tls_dir)

    def _log_tail(self) -> str:
        lines = (_read_text(self.log_file) or "").splitlines()[-_LOG_TAIL_LINES:]
        if not lines:
            return f"{self.log_file} is empty"
        return f"last lines of {self.log_file}:\n" + "\n".join(lines)


def _protocol(*, sasl: bool, tls: bool) -> str:
    """Kafka's name for a listener's security protocol."""
    return f"{'SASL_' if sasl else ''}{'SSL' if tls else 'PLAINTEXT'}"


def _exchange(sock: socket.socket, request: Any) -> Any:
    """One request and its decoded response, framed and parsed by kafka-python's protocol."""
    protocol = KafkaProtocol(client_id="pokazy-stack")
    protocol.send_request(request)
    sock.sendall(protocol.send_bytes())
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the broker closed the connection")
        responses = protocol.receive_bytes(data)
        if responses:
            return responses[0][1]


def _random_cluster_id() -> str:
    """A cluster id as Kafka's Uuid.randomUuid writes it: 16 random bytes, base64url."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _ensure_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the JVM binds: a port still in TIME_WAIT from a previous broker is reusable.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise LocalKafkaError(
                f"{HOST}:{port} is already in use by another process (another broker?); "
                "stop it or choose other ports"
            ) from exc


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is a child of this process, so it is not a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` (two callers on one data dir or cache)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read: server.properties may hold the SASL password."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _read_json(path: Path) -> dict[str, object] | None:
    text = _read_text(path)
    if text is None:
        return None
    data = json.loads(text)
    return data if isinstance(data, dict) else None


def local_kafka(settings: Settings, *, secure: bool = False, tls: bool = False) -> LocalKafka:
    """The local broker that serves `POKAZY_KAFKA_BOOTSTRAP` (its port; controller on port+1).

    `secure` and `tls` matter only to `up()`: status and stop read the running broker's own
    configuration.
    """
    port = int(settings.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])
    password = settings.kafka_sasl_password
    return LocalKafka(
        settings.data_dir,
        port=port,
        controller_port=port + 1,
        secure=secure,
        tls=tls,
        sasl_username=settings.kafka_sasl_username if secure else None,
        sasl_password=password.get_secret_value() if secure and password else None,
    )
