"""docker-compose.yml, checked as data (no Docker engine here): every service, its wiring,
health checks and environment, against what the code and the other deploy files expect."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest

from datatorag.entrypoints.serve import SERVICES as SERVE_NAMES
from datatorag.gateway.edge import check_settings
from tests.deploy._paths import COMPOSE_FILE, GRAFANA_DIR, PROMETHEUS_DIR, ROOT, SERVICES, load_yaml
from tests.deploy._settings_env import settings_from, unknown_datatorag_vars

INFRA = ("opensearch", "aws", "prometheus", "grafana")


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
    assert all("profiles" not in svc for name, svc in compose["services"].items() if name != "llm")
    assert set(SERVICES) == set(SERVE_NAMES)  # the names `datatorag serve` accepts


def test_one_image_and_one_command_per_service(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    images = {svcs[s]["image"] for s in (*SERVICES, "init")}
    assert images == {"datatorag:${DATATORAG_TAG:-latest}"}
    builds = [svcs[s]["build"] for s in (*SERVICES, "init")]
    assert all(b == builds[0] for b in builds) and builds[0]["context"] == "."
    assert builds[0]["target"] == "runtime"
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
    for s in ("parser", "indexer", "connector", "query-gateway"):
        assert svcs[s]["depends_on"] == {
            "init": {"condition": "service_completed_successfully"},
            "embedder": {"condition": "service_healthy"},
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
    assert "/moto-api/" in " ".join(svcs["aws"]["healthcheck"]["test"])


def test_environment(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    for s in (*SERVICES, "init"):
        env = {k: interpolate(str(v)) for k, v in svcs[s]["environment"].items()}
        assert unknown_datatorag_vars(env) == [], s
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
    assert compose["services"]["aws"]["image"].startswith("motoserver/moto:")


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
