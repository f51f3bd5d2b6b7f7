"""docker-compose.yml, checked by the real `docker-compose config` of docker-compose 1.29.2.

There is no Docker engine on these machines, but `config` needs none: it validates the file
against the Compose schema, interpolates `${VAR:-default}` and prints the normalized stack.
`scripts/compose-tool.sh` installs docker-compose into a venv of its own under
`.pokazy/tools/compose` on first use (PyPI is needed once). A failed install fails these tests:
the file is part of the product (SPEC section 5), never skipped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from streams.errors import ConfigError
from streams.settings import DEVELOPMENT_SENDER_HASH_KEY, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_TOOL = ROOT / "scripts" / "compose-tool.sh"
SERVICES = {"kafka", "clickhouse", "worker"}
# Optional services, each started only with its profile (`--profile NAME`).
PROFILED_SERVICES = {"grafana": "grafana"}
GRAFANA_DIR = ROOT / "deploy" / "grafana"
# The names analysts query (SPEC §3.4); dashboards read nothing else.
ANALYST_VIEWS = {
    "readings", "rejections", "billing", "billing_monthly", "submissions_daily",
    "rejection_reasons",
}  # fmt: skip
# Host variables that the compose file interpolates (or that steer docker-compose itself): none
# may leak from the developer's shell into a check of the defaults.
STACK_VARIABLE_PREFIXES = ("POKAZY_", "CLICKHOUSE_", "KAFKA_", "COMPOSE_", "GRAFANA_", "GF_")
# The first install downloads about 15 MB and builds PyYAML; it takes well under a minute.
INSTALL_TIMEOUT_S = 900
CONFIG_TIMEOUT_S = 120

Config = dict[str, Any]


@pytest.fixture(scope="module")
def docker_compose() -> Path:
    """The docker-compose 1.29.2 executable, installed on first use."""
    try:
        installed = subprocess.run(
            ["bash", str(COMPOSE_TOOL)],
            env={**os.environ, "PYTHON": sys.executable},
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{COMPOSE_TOOL} did not finish in {INSTALL_TIMEOUT_S} s: {exc.stderr!r}")
    if installed.returncode != 0:
        pytest.fail(
            f"{COMPOSE_TOOL} could not install docker-compose 1.29.2 "
            f"(exit {installed.returncode}):\n{installed.stderr}"
        )
    executable = Path(installed.stdout.strip())
    assert executable.is_file(), f"{COMPOSE_TOOL} printed {installed.stdout!r}"
    return executable


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stands in for a developer's `.env`, which would otherwise change the defaults checked."""
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


def compose_config(
    docker_compose: Path,
    env_file: Path,
    variables: dict[str, str] | None = None,
    profiles: tuple[str, ...] = (),
) -> tuple[Config, str]:
    """`docker-compose [--profile P] config` with only `variables` set, parsed; and stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(STACK_VARIABLE_PREFIXES)}
    env.update(variables or {})
    command = [
        str(docker_compose),
        "--project-directory", str(ROOT),
        "--file", str(COMPOSE_FILE),
        "--env-file", str(env_file),
        *(option for profile in profiles for option in ("--profile", profile)),
        "config",
    ]  # fmt: skip
    rendered = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=CONFIG_TIMEOUT_S, check=False
    )
    assert rendered.returncode == 0, f"docker-compose config rejected the file:\n{rendered.stderr}"
    return yaml_load(docker_compose, rendered.stdout), rendered.stderr


def yaml_load(docker_compose: Path, text: str) -> Config:
    """Parse YAML. The project's venv has no PyYAML; the tool's venv has docker-compose's own."""
    to_json = subprocess.run(
        [
            str(docker_compose.parent / "python"),
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ],
        input=text,
        capture_output=True,
        text=True,
        timeout=CONFIG_TIMEOUT_S,
        check=True,
    )
    config: Config = json.loads(to_json.stdout)
    return config


@pytest.fixture(scope="module")
def default_config(docker_compose: Path, empty_env_file: Path) -> tuple[Config, str]:
    return compose_config(docker_compose, empty_env_file)


@pytest.fixture(scope="module")
def services(default_config: tuple[Config, str]) -> dict[str, Config]:
    services: dict[str, Config] = default_config[0]["services"]
    return services


def published_ports(service: Config) -> list[tuple[str | None, str, str]]:
    """(host ip, published port, container port) of every published port, either syntax."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            published = port.get("published")
            ports.append((port.get("host_ip"), str(published or ""), str(port["target"])))
            continue
        parts = str(port).split("/")[0].split(":")
        if len(parts) == 3:
            ports.append((parts[0], parts[1], parts[2]))
        elif len(parts) == 2:
            ports.append((None, parts[0], parts[1]))
        else:
            ports.append((None, "", parts[0]))
    return ports


def worker_settings(worker: Config, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The worker's settings as pokazy would read them from the container's environment."""
    for name in list(os.environ):
        if name.startswith("POKAZY_"):
            monkeypatch.delenv(name)
    for name, value in worker["environment"].items():
        # A name without a value is passed from the host only if set there: here it is not.
        if value is not None:
            monkeypatch.setenv(name, str(value))
    return Settings.from_env()


def test_the_file_is_valid_and_needs_no_variable(default_config: tuple[Config, str]) -> None:
    config, stderr = default_config
    assert set(config["services"]) == SERVICES | set(PROFILED_SERVICES)
    # `up` without a profile starts exactly the pipeline; the rest waits for its profile.
    for name, service in config["services"].items():
        assert service.get("profiles", []) == (
            [PROFILED_SERVICES[name]] if name in PROFILED_SERVICES else []
        ), name
    # docker-compose warns "The X variable is not set" for a `${X}` without a default.
    assert "WARNING" not in stderr, stderr
    assert config["services"]["kafka"]["image"] == "apache/kafka:4.1.1"
    assert config["services"]["clickhouse"]["image"] == "clickhouse/clickhouse-server:25.8"
    assert set(config["volumes"]) >= {"kafka-data", "clickhouse-data"}


def test_every_published_port_is_bound_to_loopback(services: dict[str, Config]) -> None:
    for name, service in services.items():
        assert "network_mode" not in service, f"{name} would bypass the port bindings"
        for host_ip, published, target in published_ports(service):
            assert host_ip == "127.0.0.1", f"{name} publishes {target} on {host_ip or 'all'}"
            assert published, f"{name} publishes {target} on a random port"
    assert {p for _, p, _ in published_ports(services["kafka"])} == {"9092"}
    assert {p for _, p, _ in published_ports(services["clickhouse"])} == {"8123", "9000"}
    assert {p for _, p, _ in published_ports(services["worker"])} == {"6066"}
    assert {p for _, p, _ in published_ports(services["grafana"])} == {"3000"}


def test_every_service_has_a_healthcheck_and_a_restart_policy(
    services: dict[str, Config],
) -> None:
    for name, service in services.items():
        healthcheck = service.get("healthcheck")
        assert healthcheck, f"{name} has no healthcheck"
        assert not healthcheck.get("disable"), f"{name} disables its healthcheck"
        assert healthcheck["test"][0] in ("CMD", "CMD-SHELL"), healthcheck
        assert service.get("restart") in ("always", "unless-stopped", "on-failure"), name
    kafka_probe = " ".join(services["kafka"]["healthcheck"]["test"])
    assert "/opt/kafka/bin/" in kafka_probe
    clickhouse_probe = " ".join(services["clickhouse"]["healthcheck"]["test"])
    assert "/ping" in clickhouse_probe or "SELECT 1" in clickhouse_probe
    worker = services["worker"]
    health_url = f"http://127.0.0.1:{worker['environment']['POKAZY_WEB_PORT']}/health"
    assert health_url in " ".join(worker["healthcheck"]["test"])


def test_the_worker_is_built_here_and_waits_for_healthy_dependencies(
    services: dict[str, Config],
) -> None:
    worker = services["worker"]
    assert Path(worker["build"]["context"]) == ROOT
    assert worker["build"].get("dockerfile", "Dockerfile") == "Dockerfile"
    assert (ROOT / "Dockerfile").is_file()
    assert worker["command"] in (["worker"], "worker")
    assert worker["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "clickhouse": {"condition": "service_healthy"},
    }
    # The HTTP endpoint must listen on every interface of the container to be reachable through
    # the published port, which is what the port mapping targets.
    env = worker["environment"]
    assert env["POKAZY_WEB_BIND"] == "0.0.0.0"
    assert [t for _, _, t in published_ports(worker)] == [str(env["POKAZY_WEB_PORT"])]


def test_the_worker_environment_is_read_by_pokazy_settings(
    services: dict[str, Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = services["worker"]["environment"]
    pokazy_names = {name for name in env if name.startswith("POKAZY_")}
    known = {f"POKAZY_{field.upper()}" for field in Settings.model_fields}
    assert pokazy_names <= known, f"unknown to streams.settings: {pokazy_names - known}"
    assert pokazy_names >= {
        "POKAZY_KAFKA_BOOTSTRAP",
        "POKAZY_TOPIC_PREFIX",
        "POKAZY_PARTITIONS",
        "POKAZY_DATA_DIR",
        "POKAZY_CLICKHOUSE_URL",
        "POKAZY_SENDER_HASH_KEY",
        "POKAZY_CONTROL_KEY",
        "POKAZY_KAFKA_SECURITY_PROTOCOL",
        "POKAZY_KAFKA_SASL_MECHANISM",
        "POKAZY_KAFKA_SASL_USERNAME",
        "POKAZY_KAFKA_SASL_PASSWORD",
        "POKAZY_WEB_PORT",
        "POKAZY_WEB_BIND",
    }

    settings = worker_settings(services["worker"], monkeypatch)
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.data_dir == Path("/var/lib/pokazy")
    assert settings.web_bind == "0.0.0.0"
    assert not settings.embedded_clickhouse
    dsn = urlsplit(settings.clickhouse_dsn)
    clickhouse_env = services["clickhouse"]["environment"]
    assert (dsn.scheme, dsn.hostname, dsn.port) == ("http", "clickhouse", 8123)
    assert dsn.username == clickhouse_env["CLICKHOUSE_USER"]
    assert dsn.password == clickhouse_env["CLICKHOUSE_PASSWORD"]


def test_kafka_advertises_the_addresses_that_reach_it(
    docker_compose: Path, empty_env_file: Path
) -> None:
    config, _ = compose_config(docker_compose, empty_env_file, {"KAFKA_HOST_PORT": "19092"})
    kafka = config["services"]["kafka"]
    env = kafka["environment"]
    advertised = dict(
        reversed(listener.split("://")) for listener in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    )
    bound = dict(reversed(listener.split("://")) for listener in env["KAFKA_LISTENERS"].split(","))
    by_name = {name: address for address, name in advertised.items()}
    bound_by_name = {name: address for address, name in bound.items()}
    # Containers: kafka:9092, on a listener bound to that port.
    internal = next(name for name, address in by_name.items() if address == "kafka:9092")
    assert bound_by_name[internal].endswith(":9092")
    # The host: the published loopback port, forwarded to the listener that advertises it.
    host = next(name for name, address in by_name.items() if address == "127.0.0.1:19092")
    [(_, published, target)] = published_ports(kafka)
    assert published == "19092"
    assert bound_by_name[host].endswith(f":{target}")
    assert config["services"]["worker"]["environment"]["POKAZY_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_secrets_come_from_the_environment(
    docker_compose: Path, empty_env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "CLICKHOUSE_USER": "billing",
        "CLICKHOUSE_PASSWORD": "s3cret-from-vault",
        "POKAZY_SENDER_HASH_KEY": "a-real-hmac-key",
        "POKAZY_CONTROL_KEY": "a-real-control-key",
        "POKAZY_ENVIRONMENT": "production",
        "POKAZY_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "POKAZY_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "POKAZY_KAFKA_SASL_USERNAME": "pokazy-worker",
        "POKAZY_KAFKA_SASL_PASSWORD": "kafka-s3cret",
    }
    config, _ = compose_config(docker_compose, empty_env_file, secrets)
    services = config["services"]
    clickhouse_env = services["clickhouse"]["environment"]
    assert clickhouse_env["CLICKHOUSE_USER"] == "billing"
    assert clickhouse_env["CLICKHOUSE_PASSWORD"] == "s3cret-from-vault"

    settings = worker_settings(services["worker"], monkeypatch)
    assert settings.clickhouse_dsn == "http://billing:s3cret-from-vault@clickhouse:8123"
    assert settings.sender_hash_key.get_secret_value() == "a-real-hmac-key"
    assert settings.control_key.get_secret_value() == "a-real-control-key"
    assert settings.kafka_client_options() == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "pokazy-worker",
        "sasl_plain_password": "kafka-s3cret",
        "ssl_cafile": None,
        "ssl_certfile": None,
        "ssl_keyfile": None,
    }


def test_production_without_a_sender_key_is_refused(
    docker_compose: Path, empty_env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _ = compose_config(docker_compose, empty_env_file, {"POKAZY_ENVIRONMENT": "production"})
    worker = config["services"]["worker"]
    # The local default is pokazy's development key, which the production guard refuses.
    assert worker["environment"]["POKAZY_SENDER_HASH_KEY"] == DEVELOPMENT_SENDER_HASH_KEY
    with pytest.raises(ConfigError, match=r"POKAZY_SENDER_HASH_KEY.*POKAZY_CONTROL_KEY"):
        worker_settings(worker, monkeypatch)


# --- Grafana (profile "grafana"): dashboards over the analyst views -------------------------


@pytest.fixture(scope="module")
def grafana(docker_compose: Path, empty_env_file: Path) -> Config:
    config, stderr = compose_config(docker_compose, empty_env_file, profiles=("grafana",))
    assert "WARNING" not in stderr, stderr
    service: Config = config["services"]["grafana"]
    return service


def _bind_mounts(service: Config) -> dict[str, Path]:
    """Container path -> host path of every bind mount (docker-compose prints them absolute)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("/"):
            mounts[target] = Path(source)
    return mounts


def test_grafana_runs_11_on_loopback_with_a_healthcheck(grafana: Config) -> None:
    assert str(grafana["image"]).startswith("grafana/grafana:11.")
    assert published_ports(grafana) == [("127.0.0.1", "3000", "3000")]
    probe = " ".join(grafana["healthcheck"]["test"])
    assert "http://127.0.0.1:3000/api/health" in probe
    assert grafana["restart"] == "unless-stopped"
    assert grafana["depends_on"] == {"clickhouse": {"condition": "service_healthy"}}
    env = grafana["environment"]
    assert "grafana-clickhouse-datasource" in env["GF_INSTALL_PLUGINS"]
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_grafana_secrets_come_from_the_environment(
    docker_compose: Path, empty_env_file: Path, grafana: Config
) -> None:
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "pokazy-local-only"
    secrets = {
        "GRAFANA_ADMIN_PASSWORD": "grafana-s3cret",
        "CLICKHOUSE_USER": "billing",
        "CLICKHOUSE_PASSWORD": "s3cret-from-vault",
        "GRAFANA_HOST_PORT": "13000",
    }
    config, _ = compose_config(docker_compose, empty_env_file, secrets, profiles=("grafana",))
    env = config["services"]["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "grafana-s3cret"
    # The datasource logs in as the clickhouse service's user.
    clickhouse_env = config["services"]["clickhouse"]["environment"]
    assert env["CLICKHOUSE_USER"] == clickhouse_env["CLICKHOUSE_USER"] == "billing"
    assert env["CLICKHOUSE_PASSWORD"] == clickhouse_env["CLICKHOUSE_PASSWORD"]
    assert published_ports(config["services"]["grafana"]) == [("127.0.0.1", "13000", "3000")]


def test_grafana_provisioning_is_mounted_from_the_repository(
    docker_compose: Path, grafana: Config
) -> None:
    mounts = _bind_mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == GRAFANA_DIR / "provisioning"
    for target, source in mounts.items():
        assert source.is_dir(), f"{target} is mounted from {source}, which does not exist"
        assert GRAFANA_DIR in source.parents, source
    assert all(str(v).endswith(":ro") for v in grafana["volumes"] if str(v).startswith("/"))

    datasources = yaml_load(
        docker_compose, (GRAFANA_DIR / "provisioning/datasources/clickhouse.yaml").read_text()
    )
    [datasource] = datasources["datasources"]
    assert datasource["type"] == "grafana-clickhouse-datasource"
    settings = datasource["jsonData"]
    assert (settings["host"], settings["port"], settings["protocol"]) == (
        "clickhouse",
        8123,
        "http",
    )
    assert settings["defaultDatabase"] == "pokazy"
    # Credentials are references to the container's environment, which compose fills.
    username = settings["username"]
    password = datasource["secureJsonData"]["password"]
    for reference in (username, password):
        assert (
            reference.startswith("$")
            and reference.lstrip("${").rstrip("}") in (grafana["environment"])
        ), reference

    providers = yaml_load(
        docker_compose, (GRAFANA_DIR / "provisioning/dashboards/pokazy.yaml").read_text()
    )
    [provider] = providers["providers"]
    dashboards_path = provider["options"]["path"]
    assert mounts[dashboards_path] == GRAFANA_DIR / "dashboards"
    assert (GRAFANA_DIR / "dashboards" / "pokazy.json").is_file()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_path}/pokazy.json"
    assert datasource["uid"] == DASHBOARD["panels"][0]["datasource"]["uid"]


DASHBOARD: Config = json.loads((GRAFANA_DIR / "dashboards" / "pokazy.json").read_text())
_TABLE_REFERENCE = re.compile(r"\b(?:FROM|JOIN)\s+([A-Za-z_][\w.]*)", re.IGNORECASE)


def dashboard_queries(dashboard: Config) -> list[str]:
    """The SQL of every panel target and every query variable."""
    queries = [t["rawSql"] for panel in dashboard["panels"] for t in panel["targets"]]
    queries += [
        v["query"]["rawSql"] for v in dashboard["templating"]["list"] if v["type"] == "query"
    ]
    return queries


def test_the_dashboard_reads_only_the_analyst_views() -> None:
    assert DASHBOARD["uid"] and DASHBOARD["title"]
    assert len({panel["id"] for panel in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])
    used = set()
    for sql in dashboard_queries(DASHBOARD):
        tables = _TABLE_REFERENCE.findall(sql)
        assert tables, f"no table in {sql!r}"
        for table in tables:
            database, _, name = table.rpartition(".")
            assert database == "pokazy", f"{table} in {sql!r}"
            assert name in ANALYST_VIEWS, f"{table} is not an analyst view: {sql!r}"
            used.add(name)
    assert {"billing_monthly", "submissions_daily", "rejection_reasons", "billing"} <= used
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            assert target["datasource"]["type"] == "grafana-clickhouse-datasource"
            assert target["editorType"] == "sql"
