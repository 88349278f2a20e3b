"""Session fixtures for the deployment tests: helm and kubeconform (built by
``scripts/deploy-tools.sh``), Kubernetes JSON schemas for kubeconform, and cfn-lint.

A tool that cannot be had fails the run in CI (``tests.servers._require.unavailable``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy._paths import CHART, DEPLOY_TOOLS
from tests.servers._require import unavailable

# compiling helm takes minutes on 2 cores the first time; later runs reuse the cache
TOOLS_BUILD_TIMEOUT_S = 1500
# The oldest Kubernetes the chart supports in practice and the newest with schemas at hand.
OLDEST_KUBE = "1.30.0"


def require_module(module: str, package: str) -> Any:
    """Import a checking library (a dev dependency); missing, it fails in CI, skips loudly else."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        unavailable(
            package,
            f"python package {package!r} is not installed ({exc}); "
            "it is a dev dependency of the deploy checks",
        )
        raise  # unreachable: unavailable() raises


def cache_root() -> Path:
    return Path(os.environ.get("DATATORAG_CACHE") or Path.home() / ".cache" / "datatorag")


@dataclass(frozen=True)
class DeployTools:
    bin_dir: Path

    @property
    def helm_bin(self) -> Path:
        return self.bin_dir / "helm"

    @property
    def kubeconform_bin(self) -> Path:
        return self.bin_dir / "kubeconform"

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # helm keeps config/cache under HOME; keep it away from the developer's own
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(cache_root() / "helm" / "cache"),
            "HELM_CONFIG_HOME": str(cache_root() / "helm" / "config"),
            "HELM_DATA_HOME": str(cache_root() / "helm" / "data"),
        }
        proc = subprocess.run(
            [str(self.helm_bin), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}"
            )
        return proc

    def template(
        self,
        *values_files: Path,
        kube_version: str | None = None,
        set_values: tuple[str, ...] = (),
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        args = ["template", "rel", str(CHART), "--namespace", "datatorag"]
        for f in values_files:
            args += ["-f", str(f)]
        for s in set_values:
            args += ["--set", s]
        if kube_version:
            args += ["--kube-version", kube_version]
        return self.helm(*args, check=check)


@pytest.fixture(scope="session")
def deploy_tools() -> DeployTools:
    if not shutil.which("bash"):
        unavailable("helm/kubeconform", "bash is needed to run scripts/deploy-tools.sh")
    try:
        proc = subprocess.run(
            ["bash", str(DEPLOY_TOOLS)],
            check=False,
            capture_output=True,
            text=True,
            timeout=TOOLS_BUILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        unavailable(
            "helm/kubeconform", f"scripts/deploy-tools.sh ran past {TOOLS_BUILD_TIMEOUT_S}s"
        )
    if proc.returncode != 0:
        unavailable("helm/kubeconform", f"scripts/deploy-tools.sh failed:\n{proc.stderr[-3000:]}")
    tools = DeployTools(Path(proc.stdout.strip().splitlines()[-1]))
    for b in (tools.helm_bin, tools.kubeconform_bin):
        if not os.access(b, os.X_OK):
            unavailable("helm/kubeconform", f"{b} is not an executable")
    return tools


@dataclass(frozen=True)
class KubeSchemas:
    """A kubeconform ``-schema-location`` template over local, strict Kubernetes JSON schemas."""

    root: Path
    versions: tuple[str, ...]

    @property
    def location(self) -> str:
        return (
            str(self.root) + "/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/"
            "{{ .ResourceKind }}{{ .KindSuffix }}.json"
        )


def _prepare_schemas(src: Path, dest: Path) -> None:
    """kubernetes-validate's schemas reference ``/api/_definitions.json`` relative to their
    ``$id`` (https://kubernetes.io/...), which kubeconform would fetch: point them at the local
    file instead. Written to a temporary folder and renamed, so a half-written copy never counts."""
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    defs_url = f'"{(dest / "_definitions.json").as_uri()}#'
    for f in src.glob("*.json"):
        (tmp / f.name).write_text(f.read_text().replace('"/api/_definitions.json#', defs_url))
    try:
        tmp.rename(dest)
    except OSError:  # another session prepared it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def kube_schemas() -> KubeSchemas:
    # kubernetes-validate ships the Kubernetes JSON schemas: kubeconform validates offline
    kubernetes_validate = require_module("kubernetes_validate", "kubernetes-validate")
    pkg = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    available = sorted(
        (p.name.removesuffix("-local-strict").lstrip("v") for p in pkg.glob("v*-local-strict")),
        key=lambda v: tuple(int(x) for x in v.split(".")),
    )
    if OLDEST_KUBE not in available:
        unavailable("Kubernetes JSON schemas", f"no {OLDEST_KUBE} schemas in {pkg}")
    versions = (OLDEST_KUBE, available[-1])
    root = (
        cache_root()
        / "k8s-schemas"
        / f"kubernetes-validate-{importlib.metadata.version('kubernetes-validate')}"
    )
    for v in versions:
        dest = root / f"v{v}-local-strict"
        if not (dest / "_definitions.json").exists():
            _prepare_schemas(pkg / f"v{v}-local-strict", dest)
    return KubeSchemas(root, versions)


# The CRDs the chart renders objects of, from the operators' own Go modules (fetched through the
# Go module proxy, like helm): kubeconform validates them strictly, nothing is skipped.
CRD_MODULES = {
    "github.com/kedacore/keda/v2@v2.16.1": (
        "config/crd/bases/keda.sh_scaledobjects.yaml",
        "config/crd/bases/keda.sh_triggerauthentications.yaml",
    ),
    "github.com/prometheus-operator/prometheus-operator@v0.85.0": (
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
    ),
}


def _strict(node: Any) -> Any:
    """A CRD's openAPIV3Schema as a strict JSON schema (kubeconform's openapi2jsonschema):
    int-or-string as oneOf, and no property an object does not declare."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _go() -> str:
    for cand in (shutil.which("go"), "/usr/local/go/bin/go"):
        if cand and os.access(cand, os.X_OK):
            return cand
    unavailable(
        "CRD schemas", "Go is needed to fetch the operators' CRDs (scripts/deploy-tools.sh)"
    )
    raise AssertionError  # unreachable


@pytest.fixture(scope="session")
def crd_schemas(deploy_tools: DeployTools) -> str:
    """A kubeconform ``-schema-location`` for the KEDA and Prometheus-operator CRDs."""
    import json

    import yaml

    root = cache_root() / "crd-schemas" / "r1"
    for module, files in CRD_MODULES.items():
        proc = subprocess.run(
            [_go(), "mod", "download", "-json", module],
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "GOFLAGS": "-modcacherw"},
        )
        if proc.returncode != 0:
            unavailable("CRD schemas", f"go mod download {module}: {proc.stdout}{proc.stderr}")
        src = Path(json.loads(proc.stdout)["Dir"])
        for f in files:
            crd = yaml.safe_load((src / f).read_text())
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"].lower()
            for v in crd["spec"]["versions"]:
                dest = root / group / f"{kind}_{v['name']}.json"
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(json.dumps(_strict(v["schema"]["openAPIV3Schema"])))
                tmp.rename(dest)
    return str(root) + "/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"


@pytest.fixture(scope="session")
def cfn_lint() -> Path:
    exe = Path(sys.executable).with_name("cfn-lint")
    found = exe if exe.exists() else (Path(p) if (p := shutil.which("cfn-lint")) else None)
    if found is None:
        unavailable(
            "cfn-lint", "not installed in the venv (a dev dependency: pip install cfn-lint)"
        )
    return found


@pytest.fixture(scope="session")
def checkov() -> Path:
    """checkov from its own virtualenv (``scripts/checkov.sh``: it pins an aiobotocore/botocore
    the product cannot use, so it is no dev extra); installed once, then cached."""
    script = DEPLOY_TOOLS.with_name("checkov.sh")
    try:
        proc = subprocess.run(
            ["bash", str(script)], check=False, capture_output=True, text=True, timeout=900
        )
    except subprocess.TimeoutExpired:
        unavailable("checkov", f"{script} ran past 900 s")
    if proc.returncode != 0:
        unavailable("checkov", f"{script} failed:\n{proc.stderr[-3000:]}")
    exe = Path(proc.stdout.strip().splitlines()[-1])
    if not os.access(exe, os.X_OK):
        unavailable("checkov", f"{exe} is not an executable")
    return exe


@pytest.fixture(scope="session")
def shellcheck() -> Path:
    found = shutil.which("shellcheck")
    if found is None:
        unavailable("shellcheck", "not installed (Debian: apt-get install shellcheck)")
    return Path(found)
