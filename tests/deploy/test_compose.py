"""docker-compose.yml, checked as data (no Docker engine here): every service, its wiring,
health checks and environment, against what the code and the other deploy files expect."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest

from datatorag.connectors.config import load_sources
from datatorag.entrypoints.serve import SERVICES as SERVE_NAMES
from datatorag.gateway.edge import check_settings
from tests.deploy._paths import (
    COMPOSE_FILE,
    GRAFANA_DIR,
    PROMETHEUS_DIR,
    ROOT,
    SERVICES,
    load_yaml,
    load_yaml_with_resets,
)
from tests.deploy._settings_env import settings_from, unknown_datatorag_vars

INFRA = ("opensearch", "aws", "ftp", "prometheus", "grafana")
SLIM = ("connector", "parser", "indexer", "query-gateway", "init")
CI_OVERRIDE = ROOT / "deploy" / "compose" / "ci-host-network.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set: the default."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def test_every_service_is_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {*INFRA, "init", *SERVICES, "llm"}
    # the self-hosted LLM only runs when asked for: `docker compose --profile llm up`
    assert compose["services"]["llm"]["profiles"] == ["llm"]
    # Prometheus and Grafana (images from public registries) only with --profile monitoring
    for name in ("prometheus", "grafana"):
        assert compose["services"][name]["profiles"] == ["monitoring"]
    profiled = {"llm", "prometheus", "grafana"}
    assert all("profiles" not in svc for n, svc in compose["services"].items() if n not in profiled)
    assert set(SERVICES) == set(SERVE_NAMES)  # the names `datatorag serve` accepts


def test_one_image_and_one_command_per_service(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    # the slim image (no torch) for everything but the embedder, which gets the model image
    assert {svcs[s]["image"] for s in SLIM} == {"datatorag:${DATATORAG_TAG:-latest}"}
    builds = [svcs[s]["build"] for s in SLIM]
    assert all(b == builds[0] for b in builds) and builds[0] == {"context": ".", "target": "slim"}
    assert svcs["embedder"]["image"] == "datatorag-model:${DATATORAG_TAG:-latest}"
    assert svcs["embedder"]["build"] == {"context": ".", "target": "model"}
    for s in ("aws", "ftp"):  # development servers: moto, the sample FTP server
        assert svcs[s]["image"] == "datatorag-dev-servers:${DATATORAG_TAG:-latest}"
        assert svcs[s]["build"] == {"context": ".", "target": "dev-servers"}
    assert svcs["aws"]["command"] == ["datatorag-moto"]
    assert svcs["ftp"]["command"] == ["datatorag-sample-ftp"]
    for s in SERVICES:
        assert svcs[s]["command"] == ["serve", s]
    assert svcs["init"]["command"] == ["init"]
    assert svcs["init"]["restart"] == "no"


def test_start_order(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    assert svcs["init"]["depends_on"] == {
        "opensearch": {"condition": "service_healthy"},
        "aws": {"condition": "service_healthy"},
    }
    assert svcs["embedder"]["depends_on"] == {
        "init": {"condition": "service_completed_successfully"}
    }
    # the parser needs the tokenizer, indexer and gateway ask the embedder for the model
    after_init = {
        "init": {"condition": "service_completed_successfully"},
        "embedder": {"condition": "service_healthy"},
    }
    for s in ("parser", "indexer", "query-gateway"):
        assert svcs[s]["depends_on"] == after_init
    # the connector's sample source lives on the FTP server
    assert svcs["connector"]["depends_on"] == {
        **after_init,
        "ftp": {"condition": "service_healthy"},
    }
    assert svcs["grafana"]["depends_on"] == {"prometheus": {"condition": "service_healthy"}}


def test_healthchecks(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    for s in (*SERVICES, *INFRA):
        hc = svcs[s]["healthcheck"]
        assert hc["test"][0] in ("CMD", "CMD-SHELL") and hc["retries"] >= 3, s
    for s in SERVICES:
        assert svcs[s]["healthcheck"]["test"] == ["CMD", "datatorag-healthcheck"]
        # the model loads and dependencies are checked before /healthz answers
        assert svcs[s]["healthcheck"]["start_period"] == "90s"
    assert svcs["init"]["healthcheck"] == {"disable": True}
    assert "_cluster/health" in svcs["opensearch"]["healthcheck"]["test"][1]
    # healthy once provisioned (deploy/docker/moto_server.py), not merely listening
    assert svcs["aws"]["healthcheck"]["test"] == ["CMD", "datatorag-moto", "--check"]
    assert "2121" in " ".join(svcs["ftp"]["healthcheck"]["test"])


def test_environment(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    for s in (*SERVICES, "init", "aws"):
        env = {k: interpolate(str(v)) for k, v in svcs[s]["environment"].items()}
        assert unknown_datatorag_vars(env) == [], s
        assert env["DATATORAG_SERVICE_TOKEN"] == "dev-service-token-change-me"
        settings = settings_from(env)
        assert settings.mode.value == "production"
        assert settings.opensearch.url == "http://opensearch:9200"
        assert settings.embedding.service_url == "http://embedder:8081"
        assert settings.gateway_host == "0.0.0.0"
        assert settings.health_port == 9100
        # the dev key, as its digest: no plain key in a production-mode environment
        digest = hashlib.sha256(b"dev-key").hexdigest()
        assert settings.tenant_for_key() == {f"sha256:{digest}": "acme"}
        assert settings.admin_api_keys_value() == f"sha256:{digest}"
        assert settings.service_token is not None
        check_settings(settings)  # what the gateway checks before it starts
        # moto, through the standard AWS variable the aiobotocore clients honour
        assert env["AWS_ENDPOINT_URL"] == "http://aws:5000"
        assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]


def test_the_llm_profile_serves_a_local_model_to_the_gateway(compose: dict[str, Any]) -> None:
    llm = compose["services"]["llm"]
    assert llm["image"].startswith("vllm/vllm-openai:")
    assert llm["environment"]["HF_HUB_OFFLINE"] == "1"  # weights from the volume only
    (mount,) = llm["volumes"]
    assert mount.endswith(":/models/llm:ro")
    model = interpolate(llm["command"][llm["command"].index("--model") + 1])
    assert model.startswith("/models/llm/")
    (gpu,) = llm["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["capabilities"] == ["gpu"]
    env = {
        k: interpolate(str(v))
        for k, v in compose["services"]["query-gateway"]["environment"].items()
    }
    answer = settings_from(env).answer
    assert answer.provider_chain() == ["extractive"]  # without the profile
    assert answer.openai_base_url == "http://llm:8000/v1"
    served = interpolate(llm["command"][llm["command"].index("--served-model-name") + 1])
    assert answer.openai_model == served
    with_llm = settings_from({**env, "DATATORAG_ANSWER_PROVIDERS": "openai,extractive"}).answer
    assert with_llm.provider_chain() == ["openai", "extractive"]


def test_opensearch_single_node_without_security(compose: dict[str, Any]) -> None:
    os_ = compose["services"]["opensearch"]
    assert os_["image"].startswith("opensearchproject/opensearch:2.19.")
    assert os_["environment"]["discovery.type"] == "single-node"
    assert os_["environment"]["DISABLE_SECURITY_PLUGIN"] == "true"


def test_ports_published_on_loopback_only(compose: dict[str, Any]) -> None:
    published = {}
    for name, svc in compose["services"].items():
        for p in svc.get("ports", []):
            host, host_port, container_port = p.split(":")
            assert host == "127.0.0.1", f"{name} publishes {p} on every interface"
            published[name] = (int(host_port), int(container_port))
    assert published["query-gateway"] == (8080, 8080)
    assert published["embedder"] == (8081, 8081)


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for v in svc.get("volumes", []):
            src = interpolate(v.split(":")[0])
            if src.startswith("./deploy/"):
                assert (ROOT / src).exists(), f"{name} mounts missing {src}"


def test_prometheus_scrapes_each_service_where_it_serves_metrics(compose: dict[str, Any]) -> None:
    prom = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    targets = {
        t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    expected = {
        "query-gateway:8080",
        "embedder:8081",
        "parser:9100",
        "indexer:9100",
        "connector:9100",
    }
    assert expected <= targets
    for t in targets - {"localhost:9090"}:
        assert t.split(":")[0] in compose["services"]
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/alerts.yaml:/etc/prometheus/alerts.yaml:ro" in mounts
    assert prom["rule_files"] == ["/etc/prometheus/alerts.yaml"]


def test_grafana_provisions_the_dashboards(compose: dict[str, Any]) -> None:
    graf = compose["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in graf["volumes"] if v.startswith("./"))
    dash_dir = mounts["./deploy/grafana"]
    providers = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "datatorag.yaml")[
        "providers"
    ]
    assert providers[0]["options"]["path"] == dash_dir
    home = graf["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dash_dir + "/") and (GRAFANA_DIR / home.rsplit("/", 1)[1]).exists()
    (ds,) = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml")[
        "datasources"
    ]
    assert ds["url"] == "http://prometheus:9090" and ds["type"] == "prometheus"


def test_services_stop_gracefully(compose: dict[str, Any]) -> None:
    for s in SERVICES:
        svc = compose["services"][s]
        assert int(svc["stop_grace_period"].rstrip("s")) > 36  # 25 s grace + 10 s poll + 1
        assert svc["read_only"] is True and "/tmp" in svc["tmpfs"]


def test_the_connector_ingests_the_sample_ftp_server(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    mounts = dict(v.split(":")[:2] for v in svcs["connector"]["volumes"])
    assert mounts["./deploy/docker/sources.yaml"] == "/etc/datatorag/sources.yaml"
    config = load_sources(ROOT / "deploy" / "docker" / "sources.yaml")
    (ftp,) = [src for src in config.tenants["acme"].sources if src.type == "ftp"]
    ftp_env = {k: interpolate(str(v)) for k, v in svcs["ftp"]["environment"].items()}
    assert (ftp.host, ftp.port, ftp.username) == (
        "ftp",
        int(ftp_env["SAMPLE_FTP_PORT"]),
        ftp_env["SAMPLE_FTP_USER"],
    )
    # the password is a reference to a variable both containers get, with the same value
    assert ftp.password == "env:SAMPLE_FTP_PASSWORD"
    assert (
        svcs["connector"]["environment"]["SAMPLE_FTP_PASSWORD"]
        == (svcs["ftp"]["environment"]["SAMPLE_FTP_PASSWORD"])
    )


@pytest.fixture(scope="module")
def override() -> dict[str, Any]:
    return load_yaml_with_resets(CI_OVERRIDE)


def test_ci_override_puts_every_container_on_the_host_network(
    compose: dict[str, Any], override: dict[str, Any]
) -> None:
    default = {n for n, svc in compose["services"].items() if "profiles" not in svc}
    assert set(override["services"]) == default
    names = {f"{n}:127.0.0.1" for n in default}
    for name, svc in override["services"].items():
        assert svc["network_mode"] == "host", name
        assert set(svc["extra_hosts"]) == names - {"init:127.0.0.1"}, name  # names still resolve
        if compose["services"][name].get("ports"):
            assert svc["ports"] == "!reset", name  # nothing is published
    assert override["services"]["opensearch"]["image"].startswith("localhost/datatorag-opensearch:")


def merged_env(compose: dict[str, Any], override: dict[str, Any], name: str) -> dict[str, str]:
    env = dict(compose["services"][name].get("environment") or {})
    env.update(override["services"][name].get("environment") or {})
    return {k: interpolate(str(v)) for k, v in env.items()}


def test_ci_override_changes_only_where_services_listen(
    compose: dict[str, Any], override: dict[str, Any]
) -> None:
    listen: dict[int, str] = {}
    for name in (*SERVICES, "init", "aws"):
        base = {k: interpolate(str(v)) for k, v in compose["services"][name]["environment"].items()}
        env = merged_env(compose, override, name)
        changed = {k for k in env if env[k] != base.get(k)}
        assert all(k.endswith(("_URL", "_PORT", "_HOST")) for k in changed), (
            f"{name} changes more than addresses: {sorted(changed)}"
        )
        settings = settings_from(env)
        assert settings.gateway_host == "127.0.0.1"
        assert settings.mode.value == "production"
        if name == "query-gateway":
            port = settings.gateway_port
        elif name == "embedder":
            port = settings.embedder_port
        elif name == "aws":
            port = int(env["MOTO_PORT"])
        else:
            port = int(settings.health_port or 9100)
        if name != "init":
            assert port not in listen, f"{name} and {listen.get(port)} both listen on {port}"
            listen[port] = name
        # every service finds the others where the override makes them listen
        assert (
            settings.embedding.service_url
            == f"http://embedder:{listen_port('embedder', compose, override)}"
        )
        assert (
            env["AWS_ENDPOINT_URL"]
            == f"http://aws:{merged_env(compose, override, 'aws')['MOTO_PORT']}"
        )
    os_env = override["services"]["opensearch"]["environment"]
    assert os_env["network.host"] == "127.0.0.1"
    assert settings_from(merged_env(compose, override, "parser")).opensearch.url == (
        f"http://opensearch:{os_env['http.port']}"
    )
    assert merged_env(compose, override, "ftp")["SAMPLE_FTP_HOST"] == "127.0.0.1"
    assert merged_env(compose, override, "aws")["MOTO_HOST"] == "127.0.0.1"


def listen_port(name: str, compose: dict[str, Any], override: dict[str, Any]) -> int:
    settings = settings_from(merged_env(compose, override, name))
    return settings.embedder_port if name == "embedder" else int(settings.health_port or 9100)
