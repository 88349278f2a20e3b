"""Grafana dashboards and Prometheus alert rules: every query parses as PromQL, and every
``datatorag_*`` series it reads is one the code registers (histograms as _bucket/_sum/_count,
counters as _total), so a renamed metric breaks this test instead of a dashboard."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.deploy._paths import GRAFANA_DIR, PROMETHEUS_DIR, load_yaml
from tests.deploy.conftest import require_module

# Modules that register DatatoRAG metrics (importing them registers them).
METRIC_MODULES = (
    "datatorag.observability.metrics",
    "datatorag.gateway.metrics",
    "datatorag.retrieval.hybrid",
    "datatorag.answering.metrics",
)
DASHBOARDS = sorted(GRAFANA_DIR.glob("*.json"))
# Grafana variables, replaced by what Grafana would put there before PromQL sees the query.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
}


def exposed_series() -> set[str]:
    """Series names the code exposes (REGISTRY.collect() gives families even without samples)."""
    for m in METRIC_MODULES:
        importlib.import_module(m)
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("datatorag_"):
            names |= {family.name + s for s in SUFFIXES.get(family.type, ("",))}
    return names


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """Metric names (with their label matchers) an expression reads; raises on bad PromQL."""
    promql_parser = require_module("promql_parser", "promql-parser")
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    found: list[tuple[str, dict[str, str]]] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = node.matchers.matchers if node.matchers else []
            found.append((node.name or "", {m.name: m.value for m in matchers}))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def loose_names(expr: str) -> set[str]:
    """Second opinion without a parser: anything that looks like a datatorag_ metric name."""
    return set(re.findall(r"\bdatatorag_[a-z0-9_]+", expr))


def dashboard_exprs() -> list[tuple[str, str]]:
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for t in panel.get("targets", []):
                out.append((f"{path.name}: {panel['title']}", t["expr"]))
    return out


def alert_rules() -> list[dict[str, Any]]:
    doc = load_yaml(PROMETHEUS_DIR / "alerts.yaml")
    return [r for g in doc["groups"] for r in g["rules"]]


ALL_EXPRS = dashboard_exprs() + [(f"alert {r['alert']}", r["expr"]) for r in alert_rules()]


def test_metric_modules_register_what_the_dashboards_need() -> None:
    series = exposed_series()
    assert {
        "datatorag_messages_total",
        "datatorag_queue_depth",
        "datatorag_embed_batch_seconds_bucket",
        "datatorag_gateway_request_seconds_bucket",
        "datatorag_stalled_documents",
        "datatorag_chunks_embedded_total",
    } <= series


@pytest.mark.parametrize(("where", "expr"), ALL_EXPRS, ids=[w for w, _ in ALL_EXPRS])
def test_every_query_reads_registered_metrics(where: str, expr: str) -> None:
    series = exposed_series()
    names = {name for name, _ in selectors(expr)}
    ours = {n for n in names if n.startswith("datatorag_")}
    assert ours, f"{where}: reads no DatatoRAG metric"
    assert ours <= series, f"{where}: unknown series {sorted(ours - series)}"
    assert loose_names(expr) <= series
    assert not names - ours, f"{where}: reads foreign series {names - ours}"


def test_the_check_catches_a_renamed_metric() -> None:
    series = exposed_series()
    with pytest.raises(ValueError):
        selectors("sum(rate(datatorag_messages_total[5m])")  # unbalanced
    [(name, labels)] = selectors('rate(datatorag_message_total{outcome="ok"}[$__rate_interval])')
    assert (name, labels) == ("datatorag_message_total", {"outcome": "ok"}) and name not in series
    # a histogram is read through its _bucket series, never by its bare name
    assert "datatorag_embed_batch_seconds" not in series
    assert "datatorag_embed_batch_seconds_bucket" in series


def test_label_values_match_what_the_code_emits() -> None:
    outcomes = {"ok", "permanent_error", "retry", "dead_letter"}  # datatorag.pipeline.worker
    for where, expr in ALL_EXPRS:
        for name, labels in selectors(expr):
            if name == "datatorag_messages_total" and "outcome" in labels:
                wanted = set(labels["outcome"].split("|"))
                assert wanted <= outcomes, where
            if name == "datatorag_answers_total" and "outcome" in labels:
                assert labels["outcome"] in {"answered", "abstained", "failed"}, where
            if name == "datatorag_answer_cache_requests_total" and "result" in labels:
                assert labels["result"] in {"hit", "miss"}, where
            if name == "datatorag_documents_total" and "status" in labels:
                assert labels["status"] in {
                    "FETCHED",
                    "PARSED",
                    "EMBEDDED",
                    "INDEXED",
                    "FAILED",
                    "DELETED",
                }


def test_dashboards_are_well_formed() -> None:
    assert {p.name for p in DASHBOARDS} == {"datatorag-overview.json", "datatorag-gateway.json"}
    uids = set()
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        uids.add(d["uid"])
        assert d["title"].startswith("DatatoRAG")
        # any Prometheus data source works (compose, kube-prometheus-stack)
        (var,) = d["templating"]["list"]
        assert (var["name"], var["type"], var["query"]) == (
            "datasource",
            "datasource",
            "prometheus",
        )
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids))
        for p in d["panels"]:
            assert (
                set(p["gridPos"]) == {"x", "y", "w", "h"}
                and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
            )
            if p["type"] != "row":
                assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
                assert p["targets"] and all(t["refId"] and t["expr"] for t in p["targets"])
    assert len(uids) == len(DASHBOARDS)


def test_dashboards_cover_the_operators_questions() -> None:
    def reads(title_part: str) -> set[str]:
        return {
            n
            for where, e in dashboard_exprs()
            if title_part.lower() in where.lower()
            for n, _ in selectors(e)
        }

    assert "datatorag_messages_total" in reads("Throughput by stage")
    assert "datatorag_queue_depth" in reads("Queue depth")
    assert "datatorag_queue_depth" in reads("Dead-letter")
    assert "datatorag_messages_total" in reads("Error rate")
    assert "datatorag_embed_batch_seconds_bucket" in reads("Embed batch latency")
    assert "datatorag_chunks_embedded_total" in reads("Chunks per second")
    assert "datatorag_stalled_documents" in reads("Stalled documents")
    quantiles = [e for w, e in dashboard_exprs() if "Latency p50 / p95 / p99" in w]
    assert {re.search(r"histogram_quantile\((0\.\d+)", e).group(1) for e in quantiles} == {
        "0.5",
        "0.95",
        "0.99",
    }
    assert all("datatorag_gateway_request_seconds_bucket" in e for e in quantiles)
    # answers: first token, errors and fallbacks, abstentions, tokens, the cache
    assert "datatorag_answer_time_to_first_token_seconds_bucket" in reads("Time to first token")
    assert {"datatorag_answer_provider_errors_total", "datatorag_answer_fallbacks_total"} <= reads(
        "Provider errors and fallbacks"
    )
    assert "datatorag_answers_total" in reads("Abstention ratio")
    assert "datatorag_answer_tokens_total" in reads("Tokens in and out")
    assert "datatorag_answer_cache_requests_total" in reads("cache hit ratio")


def test_alert_rules() -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    for r in rules.values():
        assert r["labels"]["severity"] in ("warning", "critical")
        assert r["annotations"]["summary"]
    dlq = rules["DatatoRAGDeadLetterQueueNotEmpty"]
    assert selectors(dlq["expr"]) == [("datatorag_queue_depth", {"queue": ".*-dlq"})]
    assert dlq["expr"].rstrip().endswith("> 0")
    assert "datatorag_stalled_documents" in {
        n for n, _ in selectors(rules["DatatoRAGStalledDocuments"]["expr"])
    }
    p95 = rules["DatatoRAGGatewayLatencyHigh"]["expr"]
    assert "histogram_quantile(0.95" in p95 and p95.rstrip().endswith("> 0.5")  # 500 ms target
    stuck = {n for n, _ in selectors(rules["DatatoRAGWorkerNotProgressing"]["expr"])}
    assert {"datatorag_in_flight_messages", "datatorag_messages_total"} <= stuck
    assert "datatorag_worker_last_progress_timestamp_seconds" in {
        n for n, _ in selectors(rules["DatatoRAGWorkerStuck"]["expr"])
    }
    for r in rules.values():  # Prometheus durations
        assert re.fullmatch(r"\d+[smh]", r.get("for", "0s"))


def test_alert_templates_only_use_labels_the_expression_keeps() -> None:
    """``{{ $labels.x }}`` in an annotation is empty unless the expression keeps label x."""
    for r in alert_rules():
        kept = set(re.findall(r"by \(([^)]*)\)", r["expr"]))
        kept_labels = {label.strip() for group in kept for label in group.split(",")}
        for text in r["annotations"].values():
            for label in re.findall(r"\$labels\.([a-z_]+)", text):
                assert label in kept_labels, f"{r['alert']}: $labels.{label} is not kept"


def test_dashboard_json_files_are_pretty_and_stable() -> None:
    for path in DASHBOARDS:
        text = path.read_text()
        assert text == json.dumps(json.loads(text), indent=2) + "\n", (
            f"{path.name} is not canonical JSON"
        )


def test_grafana_provisioning_points_at_these_files() -> None:
    providers = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "datatorag.yaml")[
        "providers"
    ]
    assert providers[0]["type"] == "file"
    assert Path(providers[0]["options"]["path"]).is_absolute()
