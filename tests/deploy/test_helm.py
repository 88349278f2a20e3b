"""The Helm chart: ``helm lint --strict``, ``helm template`` through ``kubeconform -strict``
against the Kubernetes schemas, and what the rendered objects must say for the services to run."""

from __future__ import annotations

import inspect
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from datatorag.pipeline.worker import Worker
from tests.deploy._paths import CHART, SERVICES, WORKERS
from tests.deploy._settings_env import settings_from, unknown_datatorag_vars
from tests.deploy.conftest import DeployTools, KubeSchemas

# The first test builds helm when the cache is cold (minutes).
pytestmark = pytest.mark.timeout(1800)

VALUES: dict[str, tuple[Path, ...]] = {
    "default": (),
    "production": (CHART / "ci" / "production-values.yaml",),
    "cpu": (CHART / "ci" / "cpu-values.yaml",),
}
# objects of the operators' CRDs: validated against their schemas (crd_schemas), never skipped
CRD_KINDS = ("ServiceMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication")
RELEASE = "rel-datatorag"


Manifests = list[dict[str, Any]]


@pytest.fixture(scope="module")
def rendered(deploy_tools: DeployTools) -> dict[str, Manifests]:
    out = {}
    for name, files in VALUES.items():
        text = deploy_tools.template(*files).stdout
        out[name] = [d for d in yaml.safe_load_all(text) if d]
    return out


def of_kind(docs: Manifests, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def http_port(c: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in c["ports"] if p["name"] == "http")


def deployment(docs: Manifests, service: str) -> dict[str, Any]:
    return of_kind(docs, "Deployment")[f"{RELEASE}-{service}"]


def container(docs: Manifests, service: str) -> dict[str, Any]:
    (c,) = deployment(docs, service)["spec"]["template"]["spec"]["containers"]
    return c


def container_env(docs: Manifests, service: str) -> dict[str, Any]:
    """ConfigMap variables overlaid by the container's own (as Kubernetes resolves them)."""
    c = container(docs, service)
    env: dict[str, Any] = {}
    for src in c.get("envFrom") or []:
        env.update(of_kind(docs, "ConfigMap")[src["configMapRef"]["name"]]["data"])
    for e in c.get("env") or []:
        env[e["name"]] = e.get("value", e.get("valueFrom"))
    return env


# ---- the tools -----------------------------------------------------------------------------------


@pytest.mark.parametrize("values", list(VALUES))
def test_helm_lint_strict(deploy_tools: DeployTools, values: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    for f in VALUES[values]:
        args += ["-f", str(f)]
    proc = deploy_tools.helm(*args)
    assert "0 chart(s) failed" in proc.stdout


def test_kubeconform_strict_on_every_values_set(
    deploy_tools: DeployTools, kube_schemas: KubeSchemas, crd_schemas: str, tmp_path: Path
) -> None:
    for kube in kube_schemas.versions:
        files, expected_valid, crds = [], 0, 0
        for name, values in VALUES.items():
            text = deploy_tools.template(*values, kube_version=kube).stdout
            docs = [d for d in yaml.safe_load_all(text) if d]
            crds += sum(d["kind"] in CRD_KINDS for d in docs)
            expected_valid += len(docs)
            path = tmp_path / f"{name}-{kube}.yaml"
            path.write_text(text)
            files.append(str(path))
        proc = subprocess.run(
            [
                str(deploy_tools.kubeconform_bin),
                "-strict",
                "-summary",
                "-output",
                "json",
                "-kubernetes-version",
                kube,
                "-schema-location",
                kube_schemas.location,
                "-schema-location",
                crd_schemas,
                *files,
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
        report = json.loads(proc.stdout)
        assert proc.returncode == 0, f"kubeconform (Kubernetes {kube}):\n{proc.stdout}{proc.stderr}"
        assert report["summary"] == {
            "valid": expected_valid,
            "invalid": 0,
            "errors": 0,
            "skipped": 0,
        }, report
        assert crds >= 5  # every CRD kind was among them (production renders each)


def test_kubeconform_catches_a_wrong_field(
    deploy_tools: DeployTools, kube_schemas: KubeSchemas, tmp_path: Path
) -> None:
    """The schemas really are strict: an unknown field and a wrong type are both reported."""
    docs = [d for d in yaml.safe_load_all(deploy_tools.template().stdout) if d]
    dep = deployment(docs, "parser")
    dep["spec"]["template"]["spec"]["terminationGracePeriod"] = 60  # misspelt
    dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(dep))
    proc = subprocess.run(
        [
            str(deploy_tools.kubeconform_bin),
            "-strict",
            "-output",
            "json",
            "-kubernetes-version",
            kube_schemas.versions[-1],
            "-schema-location",
            kube_schemas.location,
            str(bad),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    (res,) = json.loads(proc.stdout)["resources"]
    assert res["status"] == "statusInvalid"
    assert "additional properties 'terminationGracePeriod' not allowed" in res["msg"]
    assert (
        "'/spec/template/spec/containers/0/ports/0/containerPort': got string, want integer"
        in res["msg"]
    )


def test_kubeconform_crd_schemas_are_strict(
    deploy_tools: DeployTools, kube_schemas: KubeSchemas, crd_schemas: str, tmp_path: Path
) -> None:
    """A misspelt field of a ScaledObject and of a ServiceMonitor is an error, not a pass."""
    docs = [
        d
        for d in yaml.safe_load_all(
            deploy_tools.template(CHART / "ci" / "production-values.yaml").stdout
        )
        if d
    ]
    (so, *_) = of_kind(docs, "ScaledObject").values()
    so["spec"]["pollingIntervall"] = 15
    (sm,) = of_kind(docs, "ServiceMonitor").values()
    sm["spec"]["endpoints"][0]["honourLabels"] = True
    bad = tmp_path / "bad-crds.yaml"
    bad.write_text(yaml.safe_dump_all([so, sm]))
    proc = subprocess.run(
        [
            str(deploy_tools.kubeconform_bin),
            "-strict",
            "-output",
            "json",
            "-kubernetes-version",
            kube_schemas.versions[-1],
            "-schema-location",
            crd_schemas,
            str(bad),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout
    msgs = " ".join(r["msg"] for r in json.loads(proc.stdout)["resources"])
    assert "'pollingIntervall' not allowed" in msgs and "'honourLabels' not allowed" in msgs


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("config.opensearch.auth=kerberos", "/config/opensearch/auth"),
        ("services.parser.replicas=-1", "/services/parser/replicas"),
        ("model.volume.type=nfs", "/model/volume/type"),
        (
            "services.parser.serviceAccount.roleArn=not-an-arn",
            "/services/parser/serviceAccount/roleArn",
        ),
        ("sources.existingSecret=a,sources.existingConfigMap=b", "not both"),
        ("model.volume.create=true", "model.volume.efs.fileSystemId"),
        ("terminationGracePeriodSeconds=30", "/terminationGracePeriodSeconds"),
        ("config.opensearch.auth=basic", "secrets.opensearch.existingSecret"),
        ("secrets.apiKeys.existingSecret=", "secrets.apiKeys.existingSecret"),
    ],
)
def test_bad_values_are_refused(deploy_tools: DeployTools, setting: str, message: str) -> None:
    proc = deploy_tools.template(set_values=(setting,), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_grace_check_follows_the_long_poll(deploy_tools: DeployTools) -> None:
    # 40 s covers 25 s + a 10 s poll, not a 20 s one
    assert deploy_tools.template(set_values=("terminationGracePeriodSeconds=40",)).returncode == 0
    proc = deploy_tools.template(
        set_values=("terminationGracePeriodSeconds=40", "config.queues.waitTimeS=20"), check=False
    )
    assert "shutdown grace" in proc.stderr


# ---- what the objects say ------------------------------------------------------------------------


@pytest.mark.parametrize("values", list(VALUES))
def test_one_deployment_and_service_per_service(
    rendered: dict[str, Manifests], values: str
) -> None:
    docs = rendered[values]
    names = {f"{RELEASE}-{s}" for s in SERVICES}
    assert set(of_kind(docs, "Deployment")) == names
    assert set(of_kind(docs, "Service")) == names
    for s in SERVICES:
        c = container(docs, s)
        assert c["args"] == ["serve", s]
        pod_labels = deployment(docs, s)["spec"]["template"]["metadata"]["labels"]
        svc = of_kind(docs, "Service")[f"{RELEASE}-{s}"]
        assert svc["spec"]["selector"].items() <= pod_labels.items()
        # a Service selects the pods of exactly one Deployment
        selected = [
            d
            for d in of_kind(docs, "Deployment").values()
            if svc["spec"]["selector"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1
        assert svc["spec"]["ports"][0]["targetPort"] == "http"


def test_embedder_runs_on_a_gpu_node(rendered: dict[str, Manifests]) -> None:
    for values in ("default", "production"):
        docs = rendered[values]
        spec = deployment(docs, "embedder")["spec"]["template"]["spec"]
        # the limit schedules it (the device plugin's resource), the toleration lets it on
        assert container(docs, "embedder")["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
            "tolerations"
        ]
        # the model image for the embedder, the slim one for everything else
        slim = container(docs, "indexer")["image"]
        assert container(docs, "embedder")["image"] == f"{slim}-model"
        assert container_env(docs, "embedder")["DATATORAG_EMBEDDING_DEVICE"] == "cuda"
        for s in set(SERVICES) - {"embedder"}:
            assert container(docs, s)["image"] == slim
            assert "nvidia.com/gpu" not in (container(docs, s)["resources"].get("limits") or {})
            assert "nodeSelector" not in deployment(docs, s)["spec"]["template"]["spec"]
    # no label stock EKS GPU nodes lack: none by default, Karpenter's g5 family in production
    assert (
        "nodeSelector"
        not in deployment(rendered["default"], "embedder")["spec"]["template"]["spec"]
    )
    assert deployment(rendered["production"], "embedder")["spec"]["template"]["spec"][
        "nodeSelector"
    ] == {"karpenter.k8s.aws/instance-family": "g5"}
    # a CPU-only cluster: nothing asks for a GPU or a GPU node
    docs = rendered["cpu"]
    spec = deployment(docs, "embedder")["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in str(spec)
    assert container_env(docs, "embedder")["DATATORAG_EMBEDDING_DEVICE"] == "cpu"


def test_model_volume(rendered: dict[str, Manifests]) -> None:
    def volume(docs: Manifests, service: str) -> dict[str, Any] | None:
        vols = deployment(docs, service)["spec"]["template"]["spec"]["volumes"]
        return next((v for v in vols if v["name"] == "model"), None)

    for values in ("default", "production"):
        docs = rendered[values]
        source = "persistentVolumeClaim"
        # the parser chunks by the model's tokenizer; the connector's stall reaper and init read
        # its dimension
        for s in ("embedder", "parser", "connector"):
            assert source in volume(docs, s)
            (mount,) = [m for m in container(docs, s)["volumeMounts"] if m["name"] == "model"]
            assert mount["readOnly"] is True
            model = container_env(docs, s)["DATATORAG_EMBEDDING_MODEL"]
            assert model.startswith(mount["mountPath"] + "/")
        for s in ("indexer", "query-gateway"):
            assert volume(docs, s) is None
    # production: the claim the chart creates, on the models stack's EFS, ReadOnlyMany
    docs = rendered["production"]
    (pvc,) = of_kind(docs, "PersistentVolumeClaim").values()
    (pv,) = of_kind(docs, "PersistentVolume").values()
    assert volume(docs, "embedder")["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["accessModes"] == pv["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
    assert pv["spec"]["csi"] == {
        "driver": "efs.csi.aws.com",
        "volumeHandle": "fs-0123456789abcdef0::fsap-0123456789abcdef0",
    }
    # created before the init hook reads the model, kept when the release goes
    for obj in (pv, pvc):
        assert obj["metadata"]["annotations"]["helm.sh/hook"] == "pre-install"
        assert obj["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert "hostPath" not in str(docs)
    docs = rendered["cpu"]
    assert all(volume(docs, s) is None for s in SERVICES)
    assert container_env(docs, "embedder")["DATATORAG_EMBEDDING_MODEL"] == "minilm"


@pytest.mark.parametrize("values", list(VALUES))
def test_probes_hit_the_port_the_service_listens_on(
    rendered: dict[str, Manifests], values: str
) -> None:
    docs = rendered[values]
    for s in SERVICES:
        c = container(docs, s)
        env = container_env(docs, s)
        port = http_port(c)
        listens = {
            "query-gateway": env["DATATORAG_GATEWAY_PORT"],
            "embedder": env["DATATORAG_EMBEDDER_PORT"],
        }.get(s) or env["DATATORAG_HEALTH_PORT"]
        assert port["name"] == "http" and port["containerPort"] == int(listens)
        assert env["DATATORAG_GATEWAY_HOST"] == "0.0.0.0"  # reachable from outside the pod
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
        # /readyz checks each dependency with a 5 s timeout
        assert c["readinessProbe"]["timeoutSeconds"] > 5
    for s in WORKERS:
        assert container_env(docs, s)["DATATORAG_HEALTH_PORT"] == "9100"


@pytest.mark.parametrize("values", list(VALUES))
def test_pods_outlive_the_worker_shutdown_grace(
    rendered: dict[str, Manifests], values: str
) -> None:
    grace = inspect.signature(Worker.__init__).parameters["grace_s"].default
    docs = rendered[values]
    for s in SERVICES:
        env = container_env(docs, s)
        # Worker.stop waits grace_s + one long poll + 1 s before it cancels
        needed = grace + int(env["DATATORAG_QUEUE_WAIT_TIME_S"]) + 1
        assert (
            deployment(docs, s)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            > needed
        )


@pytest.mark.parametrize("values", list(VALUES))
def test_pods_are_locked_down(rendered: dict[str, Manifests], values: str) -> None:
    docs = rendered[values]
    pods = [d["spec"]["template"]["spec"] for d in of_kind(docs, "Deployment").values()]
    pods += [j["spec"]["template"]["spec"] for j in of_kind(docs, "Job").values()]
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
        assert pod["automountServiceAccountToken"] is False
        (c,) = pod["containers"]
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        # the read-only root needs a writable /tmp
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
        assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])
        assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]


def test_autoscaling(rendered: dict[str, Manifests]) -> None:
    docs = rendered["default"]
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == {f"{RELEASE}-{s}" for s in ("parser", "indexer", "query-gateway")}
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert "replicas" not in of_kind(docs, "Deployment")[name]["spec"]  # the HPA owns it
    assert not of_kind(docs, "ScaledObject")

    # production: KEDA on the SQS backlog for the queue workers, the CPU HPA for the gateway
    docs = rendered["production"]
    scaled = of_kind(docs, "ScaledObject")
    assert set(scaled) == {f"{RELEASE}-{s}" for s in ("parser", "embedder", "indexer")}
    assert set(of_kind(docs, "HorizontalPodAutoscaler")) == {f"{RELEASE}-query-gateway"}
    queues = {
        "parser": "datatorag-parse",
        "embedder": "datatorag-embed",
        "indexer": "datatorag-index",
    }
    auth = of_kind(docs, "TriggerAuthentication")
    for s, queue in queues.items():
        so = scaled[f"{RELEASE}-{s}"]
        assert so["apiVersion"] == "keda.sh/v1alpha1"
        assert so["spec"]["scaleTargetRef"]["name"] in of_kind(docs, "Deployment")
        (trigger,) = so["spec"]["triggers"]
        assert trigger["type"] == "aws-sqs-queue"
        assert (
            trigger["metadata"]["queueURL"]
            == f"https://sqs.eu-west-1.amazonaws.com/123456789012/{queue}"
        )
        assert trigger["metadata"]["awsRegion"] == "eu-west-1"
        assert trigger["authenticationRef"]["name"] in auth
        assert "replicas" not in deployment(docs, s)["spec"]
    assert next(iter(auth.values()))["spec"]["podIdentity"]["provider"] == "aws"


@pytest.mark.parametrize("values", list(VALUES))
def test_disruption_budgets_cover_their_deployments(
    rendered: dict[str, Manifests], values: str
) -> None:
    docs = rendered[values]
    pdbs = of_kind(docs, "PodDisruptionBudget")
    assert pdbs, "no PodDisruptionBudget"
    for name, pdb in pdbs.items():
        # maxUnavailable never blocks draining a single-replica service
        assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
        labels = of_kind(docs, "Deployment")[name]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    if values == "default":
        assert len(pdbs) == len(SERVICES)


def test_one_service_account_and_irsa_role_per_service(rendered: dict[str, Manifests]) -> None:
    for values in VALUES:
        docs = rendered[values]
        accounts = of_kind(docs, "ServiceAccount")
        used = {}
        for s in SERVICES:
            used[s] = deployment(docs, s)["spec"]["template"]["spec"]["serviceAccountName"]
        (job,) = of_kind(docs, "Job").values()
        used["init"] = job["spec"]["template"]["spec"]["serviceAccountName"]
        # <fullname>-<service>: the subjects eks.yaml's per-service roles trust
        assert used == {s: f"{RELEASE}-{s}" for s in used}
        assert set(accounts) == set(used.values())
        for s, name in used.items():
            annotations = accounts[name]["metadata"].get("annotations") or {}
            assert accounts[name]["automountServiceAccountToken"] is False
            if values == "production":
                assert (
                    annotations["eks.amazonaws.com/role-arn"]
                    == f"arn:aws:iam::123456789012:role/datatorag-eks-{s}"
                )
            else:
                assert "eks.amazonaws.com/role-arn" not in annotations


def test_secrets_come_from_secret_refs(
    rendered: dict[str, Manifests], deploy_tools: DeployTools
) -> None:
    docs = rendered["production"]
    # with every Secret existing, the chart holds no secret value itself
    assert not of_kind(docs, "Secret")
    # the internal endpoints' token: checked by connector and embedder, sent by their callers
    for s in ("query-gateway", "connector", "embedder", "indexer"):
        env = {e["name"]: e for e in container(docs, s).get("env") or []}
        assert env["DATATORAG_SERVICE_TOKEN"]["valueFrom"]["secretKeyRef"] == {
            "name": "datatorag-service-token",
            "key": "service-token",
        }
    # the connector's source credentials come from a Secret (extraEnv valueFrom)
    env = {e["name"]: e for e in container(docs, "connector")["env"]}
    assert env["ACME_SFTP_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == (
        "datatorag-connector-credentials"
    )
    # default: the token is generated into a Secret the chart names
    (token,) = of_kind(rendered["default"], "Secret").values()
    assert token["metadata"]["name"] == f"{RELEASE}-service-token"
    assert len(token["data"]["service-token"]) >= 48
    for s in SERVICES:
        env = {e["name"]: e for e in container(docs, s).get("env") or []}
        if s == "query-gateway":
            assert env["DATATORAG_API_KEYS"]["valueFrom"]["secretKeyRef"] == {
                "name": "datatorag-api-keys",
                "key": "api-keys",
            }
        else:  # only the gateway authenticates callers
            assert "DATATORAG_API_KEYS" not in env
        # the domain of deploy/cloudformation has no internal users: SigV4 through IRSA
        assert "DATATORAG_OPENSEARCH_PASSWORD" not in env
    cm = of_kind(docs, "ConfigMap")[f"{RELEASE}-env"]
    assert cm["data"]["DATATORAG_OPENSEARCH_AUTH"] == "sigv4"
    assert not any("PASSWORD" in k or "API_KEYS" in k for k in cm["data"])
    # basic auth, where a domain has internal users: both from the Secret
    text = deploy_tools.template(
        set_values=("config.opensearch.auth=basic", "secrets.opensearch.existingSecret=os")
    ).stdout
    env = {
        e["name"]: e
        for e in container([d for d in yaml.safe_load_all(text) if d], "indexer")["env"]
    }
    for var, key in (
        ("DATATORAG_OPENSEARCH_USERNAME", "username"),
        ("DATATORAG_OPENSEARCH_PASSWORD", "password"),
    ):
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "os", "key": key}


@pytest.mark.parametrize("values", list(VALUES))
def test_environment_is_what_the_code_reads(rendered: dict[str, Manifests], values: str) -> None:
    docs = rendered[values]
    for s in SERVICES:
        env = container_env(docs, s)
        assert unknown_datatorag_vars(env) == [], f"{s}: variables datatorag.config ignores"
        plain = {k: v for k, v in env.items() if isinstance(v, str)}
        settings = settings_from(plain)  # raises on a value Settings refuses
        assert settings.mode.value == "production"
        assert settings.queues.parse == "datatorag-parse"
        assert settings.queues.visibility_timeout_s == int(
            env["DATATORAG_QUEUE_VISIBILITY_TIMEOUT_S"]
        )
        assert settings.embedding.service_url == f"http://{RELEASE}-embedder:8081"
        assert settings.opensearch.auth in ("none", "basic", "sigv4")
    if values == "production":
        s = settings_from(
            {k: v for k, v in container_env(docs, "parser").items() if isinstance(v, str)}
        )
        assert (s.aws.sse, s.embedding.truncate_dim, s.opensearch.region) == (
            "aws:kms",
            512,
            "eu-west-1",
        )


def test_embedder_url_names_the_embedder_service(rendered: dict[str, Manifests]) -> None:
    docs = rendered["default"]
    url = container_env(docs, "indexer")["DATATORAG_EMBEDDING_SERVICE_URL"]
    svc = of_kind(docs, "Service")[f"{RELEASE}-embedder"]
    assert url == f"http://{svc['metadata']['name']}:{svc['spec']['ports'][0]['port']}"


def test_service_monitor_scrapes_every_service(rendered: dict[str, Manifests]) -> None:
    assert not of_kind(rendered["default"], "ServiceMonitor")
    docs = rendered["production"]
    (sm,) = of_kind(docs, "ServiceMonitor").values()
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = sm["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    selected = [
        s
        for s in of_kind(docs, "Service").values()
        if sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert len(selected) == len(SERVICES)
    assert all(any(p["name"] == "http" for p in s["spec"]["ports"]) for s in selected)


def test_init_job_is_a_hook_before_the_services(rendered: dict[str, Manifests]) -> None:
    docs = rendered["default"]
    (job,) = of_kind(docs, "Job").values()
    assert job["metadata"]["name"] == f"{RELEASE}-init"
    hook = job["metadata"]["annotations"]
    assert hook["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert hook["helm.sh/hook-delete-policy"] == "before-hook-creation"
    pod = job["spec"]["template"]["spec"]
    # what it needs exists before the release's own objects: hooks of a lower weight
    (c,) = pod["containers"]
    env_cm = of_kind(docs, "ConfigMap")[c["envFrom"][0]["configMapRef"]["name"]]
    sa = of_kind(docs, "ServiceAccount")[pod["serviceAccountName"]]
    for obj in (env_cm, sa):
        assert obj["metadata"]["annotations"]["helm.sh/hook"] == hook["helm.sh/hook"]
        assert int(obj["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
            hook["helm.sh/hook-weight"]
        )
    assert env_cm["data"] == of_kind(docs, "ConfigMap")[f"{RELEASE}-env"]["data"]
    assert pod["restartPolicy"] == "OnFailure"
    (c,) = pod["containers"]
    assert c["args"] == ["init"]
    assert any(m["name"] == "model" for m in c["volumeMounts"])


def test_config_change_rolls_the_pods(deploy_tools: DeployTools) -> None:
    def checksum(*sets: str) -> str:
        docs = [d for d in yaml.safe_load_all(deploy_tools.template(set_values=sets).stdout) if d]
        return deployment(docs, "parser")["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]

    assert checksum() == checksum()
    assert checksum() != checksum("config.queues.maxReceives=7")


def test_checkov_on_the_rendered_chart(
    deploy_tools: DeployTools, checkov: Path, tmp_path: Path
) -> None:
    """No failed check on any values set (llm included); every skipped check is one the chart
    suppresses inline with its reason (``datatorag.checkovSkips``), and each of those would fail."""
    for name, files in {**VALUES, "llm": (CHART / "ci" / "llm-values.yaml",)}.items():
        (tmp_path / f"{name}.yaml").write_text(deploy_tools.template(*files).stdout)
    proc = subprocess.run(
        [
            str(checkov),
            *("-d", str(tmp_path)),
            *("--framework", "kubernetes"),
            "--skip-download",
            *("-o", "json"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = json.loads(proc.stdout)
    (k8s,) = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in k8s["results"]["failed_checks"]
    ]
    assert failed == [], "\n".join(failed)
    assert k8s["summary"]["parsing_errors"] == 0
    assert k8s["summary"]["passed"] > 1000  # it really looked at the objects
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    justified = dict(
        line.split("=", 1)
        for line in (
            m.split(": ", 1)[1] for m in helpers.splitlines() if m.startswith("checkov.io/skip")
        )
    )
    assert all(len(why) > 40 for why in justified.values()), justified
    skipped = {
        c["check_id"]: c["check_result"].get("suppress_comment")
        for c in k8s["results"]["skipped_checks"]
    }
    # exactly the justified checks are skipped (none stale), with their reasons
    assert skipped == justified


def test_alert_rules_and_dashboards_are_the_deploy_files(rendered: dict[str, Manifests]) -> None:
    """The chart's copies (files/) are deploy/prometheus/alerts.yaml and deploy/grafana/*.json."""
    from tests.deploy._paths import GRAFANA_DIR, PROMETHEUS_DIR

    assert (CHART / "files" / "alerts.yaml").read_text() == (
        PROMETHEUS_DIR / "alerts.yaml"
    ).read_text()
    docs = rendered["production"]
    (rule,) = of_kind(docs, "PrometheusRule").values()
    assert (
        rule["spec"]["groups"]
        == yaml.safe_load((PROMETHEUS_DIR / "alerts.yaml").read_text())["groups"]
    )
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    boards = {
        k: v
        for cm in of_kind(docs, "ConfigMap").values()
        if cm["metadata"]["labels"].get("grafana_dashboard") == "1"
        for k, v in cm["data"].items()
    }
    assert boards == {p.name: p.read_text().rstrip("\n") for p in GRAFANA_DIR.glob("*.json")}
    assert not of_kind(rendered["default"], "PrometheusRule")  # opt-in
    (sm,) = of_kind(docs, "ServiceMonitor").values()
    assert sm["spec"]["endpoints"][0]["honorLabels"] is True


@pytest.mark.parametrize("values", list(VALUES))
def test_gateway_serves_grpc_and_reaches_the_connector(
    rendered: dict[str, Manifests], values: str
) -> None:
    docs = rendered[values]
    svc = of_kind(docs, "Service")[f"{RELEASE}-query-gateway"]
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["grpc"]["appProtocol"] == "grpc" and ports["grpc"]["targetPort"] == "grpc"
    c = container(docs, "query-gateway")
    grpc_port = next(p for p in c["ports"] if p["name"] == "grpc")["containerPort"]
    env = container_env(docs, "query-gateway")
    assert int(env["DATATORAG_GRPC_PORT"]) == grpc_port == ports["grpc"]["port"]
    connector = of_kind(docs, "Service")[f"{RELEASE}-connector"]
    assert env["DATATORAG_CONNECTOR_URL"] == (
        f"http://{connector['metadata']['name']}:{connector['spec']['ports'][0]['port']}"
    )
    # the connector reads the sources file the chart mounts
    cenv = container_env(docs, "connector")
    (mount,) = [m for m in container(docs, "connector")["volumeMounts"] if m["name"] == "sources"]
    assert cenv["DATATORAG_SOURCES_FILE"].startswith(mount["mountPath"] + "/")


def test_network_policies_admit_only_the_callers(rendered: dict[str, Manifests]) -> None:
    docs = rendered["default"]
    pols = of_kind(docs, "NetworkPolicy")
    pods = [
        d["spec"]["template"]["metadata"]["labels"]
        for d in [*of_kind(docs, "Deployment").values(), *of_kind(docs, "Job").values()]
    ]
    # every pod is selected by a policy
    for labels in pods:
        assert any(
            p["spec"]["podSelector"]["matchLabels"].items() <= labels.items() for p in pols.values()
        )

    def callers(service: str) -> set[str]:
        (rule,) = pols[f"{RELEASE}-{service}"]["spec"]["ingress"]
        return {
            p["podSelector"]["matchLabels"].get("app.kubernetes.io/component", "prometheus")
            for p in rule["from"]
            if "namespaceSelector" not in p
        } | {"prometheus" for p in rule["from"] if "namespaceSelector" in p}

    assert callers("connector") == {"query-gateway", "prometheus"}
    assert callers("embedder") == {"query-gateway", "indexer", "prometheus"}
    assert callers("parser") == callers("indexer") == {"prometheus"}
    (gw,) = pols[f"{RELEASE}-query-gateway"]["spec"]["ingress"]
    assert "from" not in gw  # the API: from anywhere by default
    assert "ingress" not in pols[f"{RELEASE}-init"]["spec"]  # init serves nothing


def test_pods_spread_over_zones_and_nodes(rendered: dict[str, Manifests]) -> None:
    for s in SERVICES:
        spec = deployment(rendered["production"], s)["spec"]["template"]["spec"]
        keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        for c in spec["topologySpreadConstraints"]:
            assert c["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == s


def test_ingress_routes_rest_and_grpc(rendered: dict[str, Manifests]) -> None:
    assert not of_kind(rendered["default"], "Ingress")
    ing = of_kind(rendered["production"], "Ingress")
    rest, grpc_ = ing[f"{RELEASE}-query-gateway"], ing[f"{RELEASE}-query-gateway-grpc"]
    assert (
        grpc_["metadata"]["annotations"]["alb.ingress.kubernetes.io/backend-protocol-version"]
        == "GRPC"
    )
    backend = grpc_["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": f"{RELEASE}-query-gateway", "port": {"name": "grpc"}}
    assert rest["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] == {
        "name": "http"
    }
    for i in (rest, grpc_):
        assert i["metadata"]["annotations"]["alb.ingress.kubernetes.io/group.name"] == "datatorag"


def test_every_value_is_in_the_schema_with_a_description() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node: dict[str, Any], value: Any, path: str) -> None:
        props = node.get("properties") or {}
        for key, sub in props.items():
            assert sub.get("description"), f"{path}{key}: no description"
        if isinstance(value, dict) and props:
            for key, v in value.items():
                assert key in props, f"{path}{key}: not in the schema"
                walk(props[key], v, f"{path}{key}.")

    walk(schema, values, "")
    assert schema["additionalProperties"] is False  # an unknown value is refused
