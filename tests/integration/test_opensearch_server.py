"""The test node itself: the version, plugins and modules the adapter relies on; its settings."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest

# generous: the first test also pays for starting the session's node (install included, once)
pytestmark = [pytest.mark.opensearch, pytest.mark.timeout(600)]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_node_is_2_19_with_knn_painless_and_reindex(opensearch_server) -> None:
    info = _get(opensearch_server.url)
    assert info["version"]["number"].startswith("2.19.")
    nodes = _get(f"{opensearch_server.url}/_nodes/plugins")["nodes"]
    node = next(iter(nodes.values()))
    plugins = {p["name"] for p in node["plugins"]}
    modules = {m["name"] for m in node["modules"]}
    assert "opensearch-knn" in plugins
    # k-NN extends painless; delete_by_query lives in reindex
    assert {"lang-painless", "reindex"} <= modules


def test_owned_node_listens_on_loopback_with_small_heap(opensearch_server) -> None:
    if not opensearch_server.owned:
        pytest.skip("node given by DATATORAG_TEST_OPENSEARCH_URL: its settings are not ours")
    nodes = _get(f"{opensearch_server.url}/_nodes/jvm,http,settings")["nodes"]
    node = next(iter(nodes.values()))
    assert node["jvm"]["mem"]["heap_max_in_bytes"] == 512 * 1024 * 1024
    assert node["http"]["publish_address"].startswith("127.0.0.1:")
    assert node["settings"]["discovery"]["type"] == "single-node"


def test_script_start_is_idempotent_and_status_reports_the_node(opensearch_server) -> None:
    from tests.servers.opensearch import run_script

    if opensearch_server.run_dir is None:
        pytest.skip("node not started by scripts/opensearch.sh in this session")
    port = urllib.parse.urlsplit(opensearch_server.url).port
    assert port is not None
    pid_file = opensearch_server.run_dir / "opensearch.pid"
    pid = pid_file.read_text().strip()
    again = run_script("start", opensearch_server.run_dir, port)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == opensearch_server.url
    assert pid_file.read_text().strip() == pid  # running already: no second node
    status = run_script("status", opensearch_server.run_dir, port)
    assert status.returncode == 0
    assert status.stdout.startswith(opensearch_server.url)
    assert f"pid={pid}" in status.stdout
