"""Rendered Kubernetes objects run as local processes, the way a kubelet would run them.

``Cluster`` takes the documents of ``helm template`` plus the objects that exist before the
install (Secrets an operator creates, the claims' contents), and for each Job and Deployment:

* builds the container's environment exactly as Kubernetes resolves it: ``envFrom``
  (ConfigMaps, Secrets), then ``env`` (``value``, ``secretKeyRef``, ``configMapKeyRef``); a
  reference to an object or key that does not exist fails, as the kubelet refuses to start the
  container (``CreateContainerConfigError``);
* materialises the pod's volumes under a temporary root: ``emptyDir`` a fresh folder, ``configMap``
  and ``secret`` their (selected) keys as files, ``persistentVolumeClaim`` the claim's folder; a
  volume kind it cannot materialise fails. The process cannot see ``/etc/...`` or ``/models``, so
  an environment value naming a path under a mount is remapped to the folder (``/tmp``:
  ``TMPDIR``); nothing else is changed;
* runs the image's entry point (``datatorag``, the Dockerfile's ``ENTRYPOINT``) with the
  container's ``command``/``args``.

What the platform adds, and only that: cluster DNS (a ``sitecustomize`` resolving every rendered
Service name to 127.0.0.1, where that Service's pod listens: the tests give each service its own
port through the chart's values), and the AWS endpoint and credentials that IRSA would inject
(``AWS_ENDPOINT_URL`` of the moto server, dummy keys).

Hook Jobs run first, in hook-weight order, each to completion. Deployments then start together; a
container that exits is restarted with a growing back-off, like ``restartPolicy: Always``, and
the count is kept (``restarts``). Readiness is the rendered ``readinessProbe`` (an ``httpGet`` on
the named container port).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ENTRYPOINT = [sys.executable, "-m", "datatorag.entrypoints.cli"]  # the image's `datatorag`
_DIRECT = httpx.Client(timeout=10, trust_env=False)

SITECUSTOMIZE = '''"""Cluster DNS for tests/deploy/kubelet.py: every Service at 127.0.0.1.

The services run on uvloop, whose resolver is libuv's (not socket.getaddrinfo): its loop's
getaddrinfo, which anyio (httpx) calls, is overridden too."""
import json, os, socket

_HOSTS = set(json.loads(os.environ.get("KUBELET_SIM_SERVICES", "[]")))
_real = socket.getaddrinfo


def _host(host):
    if isinstance(host, bytes):
        host = host.decode()
    return "127.0.0.1" if host in _HOSTS else host


def _getaddrinfo(host, *args, **kwargs):
    return _real(_host(host), *args, **kwargs)


socket.getaddrinfo = _getaddrinfo

try:
    import uvloop
except ImportError:
    pass
else:
    class _Loop(uvloop.Loop):
        async def getaddrinfo(self, host, *args, **kwargs):
            return await super().getaddrinfo(_host(host), *args, **kwargs)

    uvloop.new_event_loop = _Loop
'''


class ConfigError(AssertionError):
    """The rendered object asks for something a cluster could not give it."""


Manifest = dict[str, Any]


def by_kind(docs: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@dataclass
class Container:
    name: str  # the pod's (Deployment's or Job's) name
    args: list[str]
    env: dict[str, str]
    ports: dict[str, int]
    readiness_path: str | None
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    exits: list[int] = field(default_factory=list)

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - owned by the child
        out.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n".encode())
        out.flush()
        self.proc = subprocess.Popen(
            [*ENTRYPOINT, *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT
        )
        out.close()

    def ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None or self.readiness_path is None:
            return False
        try:
            url = f"http://127.0.0.1:{self.ports['http']}{self.readiness_path}"
            return _DIRECT.get(url, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def tail(self, n: int = 40) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            lines = []
        return f"--- {self.name} (restarts {self.restarts}, exits {self.exits}) ---\n" + "\n".join(
            lines
        )


class Cluster:
    def __init__(
        self,
        docs: list[Manifest],
        root: Path,
        *,
        existing: list[Manifest],
        claims: dict[str, Path],
        platform_env: dict[str, str],
    ) -> None:
        self.docs = docs
        self.root = root
        self.objects = {
            (d["kind"], d["metadata"]["name"]): d
            for d in [*existing, *docs]
            if d["kind"] in ("ConfigMap", "Secret")
        }
        self.claims = claims
        self.services = sorted(by_kind(docs, "Service"))
        site = root / "site"
        site.mkdir(parents=True, exist_ok=True)
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        self.platform_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root),
            "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "KUBELET_SIM_SERVICES": json.dumps(self.services),
            "NO_PROXY": "*",
            **platform_env,
        }
        self.containers: dict[str, Container] = {}
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- objects ----------------------------------------------------------------------------------
    def _data(self, kind: str, name: str) -> dict[str, str]:
        obj = self.objects.get((kind, name))
        if obj is None:
            raise ConfigError(f"{kind} {name!r} does not exist (CreateContainerConfigError)")
        if kind == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
            data.update(obj.get("stringData") or {})
            return data
        return {k: str(v) for k, v in (obj.get("data") or {}).items()}

    def _key(self, ref: dict[str, Any], kind: str) -> str | None:
        """The referenced value; None for a missing key the reference marks ``optional`` (the
        kubelet leaves the variable unset then)."""
        data = self._data(kind, ref["name"])
        if ref["key"] not in data:
            if ref.get("optional") is True:
                return None
            raise ConfigError(f"{kind} {ref['name']!r} has no key {ref['key']!r}")
        return data[ref["key"]]

    def env_of(self, c: Manifest) -> dict[str, str]:
        env: dict[str, str] = {}
        for src in c.get("envFrom") or []:
            if "configMapRef" in src:
                env.update(self._data("ConfigMap", src["configMapRef"]["name"]))
            elif "secretRef" in src:
                env.update(self._data("Secret", src["secretRef"]["name"]))
            else:
                raise ConfigError(f"envFrom entry not understood: {src}")
        for e in c.get("env") or []:
            if "value" in e:
                env[e["name"]] = str(e["value"])
            elif "secretKeyRef" in (e.get("valueFrom") or {}):
                value = self._key(e["valueFrom"]["secretKeyRef"], "Secret")
                if value is not None:
                    env[e["name"]] = value
            elif "configMapKeyRef" in (e.get("valueFrom") or {}):
                value = self._key(e["valueFrom"]["configMapKeyRef"], "ConfigMap")
                if value is not None:
                    env[e["name"]] = value
            else:
                raise ConfigError(f"env entry not understood: {e}")
        return env

    def _volumes(self, pod: str, spec: Manifest) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for v in spec.get("volumes") or []:
            where = self.root / "pods" / pod / "volumes" / v["name"]
            if "emptyDir" in v:
                where.mkdir(parents=True, exist_ok=True)
            elif "configMap" in v or "secret" in v:
                kind, ref = ("ConfigMap", v["configMap"]) if "configMap" in v else ("Secret", None)
                name = ref["name"] if ref else v["secret"]["secretName"]
                items = (ref or v["secret"]).get("items")
                data = self._data(kind, name)
                where.mkdir(parents=True, exist_ok=True)
                for item in items or [{"key": k, "path": k} for k in data]:
                    if item["key"] not in data:
                        raise ConfigError(f"{kind} {name!r} has no key {item['key']!r}")
                    (where / item["path"]).write_text(data[item["key"]])
            elif "persistentVolumeClaim" in v:
                claim = v["persistentVolumeClaim"]["claimName"]
                if claim not in self.claims:
                    raise ConfigError(f"PersistentVolumeClaim {claim!r} does not exist (Pending)")
                where = self.claims[claim]
            else:
                raise ConfigError(f"volume kind not supported here: {v}")
            out[v["name"]] = where
        return out

    def container(self, pod: str, spec: Manifest) -> Container:
        (c,) = spec["containers"]
        if c.get("command"):
            raise ConfigError(f"{pod}: a command replaces the image's entry point: {c['command']}")
        vols = self._volumes(pod, spec)
        mounts = {}
        for m in c.get("volumeMounts") or []:
            if m["name"] not in vols:
                raise ConfigError(f"{pod}: mount of an undeclared volume {m['name']!r}")
            mounts[m["mountPath"].rstrip("/")] = vols[m["name"]]
        env = self.env_of(c)
        for k, v in env.items():
            for path, local in mounts.items():
                if v == path or v.startswith(path + "/"):
                    env[k] = str(local) + v[len(path) :]
        if "/tmp" in mounts:
            env["TMPDIR"] = str(mounts["/tmp"])
        ports = {p["name"]: int(p["containerPort"]) for p in c.get("ports") or []}
        probe = (c.get("readinessProbe") or {}).get("httpGet")
        if probe is not None and probe["port"] not in ports:
            raise ConfigError(f"{pod}: readiness probe on an unknown port {probe['port']!r}")
        log = self.root / f"{pod}.log"
        return Container(
            pod,
            list(c.get("args") or []),
            {**env, **self.platform_env},
            ports,
            probe["path"] if probe else None,
            log,
        )

    # -- running ----------------------------------------------------------------------------------
    def run_hooks(self, timeout: float = 300) -> list[Container]:
        def weight(job: Manifest) -> int:
            return int((job["metadata"].get("annotations") or {}).get("helm.sh/hook-weight", 0))

        jobs = sorted(by_kind(self.docs, "Job").values(), key=weight)
        done = []
        for job in jobs:
            hook = (job["metadata"].get("annotations") or {}).get("helm.sh/hook", "")
            if "pre-install" not in hook:
                raise ConfigError(f"Job {job['metadata']['name']} is not a pre-install hook")
            c = self.container(job["metadata"]["name"], job["spec"]["template"]["spec"])
            c.start()
            assert c.proc is not None
            try:
                rc = c.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                c.proc.kill()
                raise AssertionError(f"hook Job timed out\n{c.tail()}") from None
            c.exits.append(rc)
            assert rc == 0, f"hook Job failed ({rc})\n{c.tail()}"
            done.append(c)
        return done

    def start_deployments(self) -> None:
        for name, dep in by_kind(self.docs, "Deployment").items():
            self.containers[name] = self.container(name, dep["spec"]["template"]["spec"])
        for c in self.containers.values():
            c.start()
        self._watcher = threading.Thread(target=self._restart_loop, daemon=True)
        self._watcher.start()

    def _restart_loop(self) -> None:
        backoff: dict[str, float] = {}
        while not self._stop.wait(0.5):
            for c in self.containers.values():
                if c.proc is not None and c.proc.poll() is not None and not self._stop.is_set():
                    c.exits.append(c.proc.returncode)
                    delay = backoff.get(c.name, 1.0)
                    time.sleep(delay)
                    backoff[c.name] = min(delay * 2, 10.0)
                    c.restarts += 1
                    c.start()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(c.ready() for c in self.containers.values()):
                return
            time.sleep(0.5)
        not_ready = [c.name for c in self.containers.values() if not c.ready()]
        raise AssertionError(f"not ready after {timeout:.0f}s: {not_ready}\n{self.tails()}")

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(15)
        for c in self.containers.values():
            if c.proc is not None and c.proc.poll() is None:
                c.proc.terminate()
        for c in self.containers.values():
            if c.proc is not None:
                try:
                    c.proc.wait(60)
                except subprocess.TimeoutExpired:
                    c.proc.kill()
                    c.proc.wait(10)

    def tails(self, n: int = 30) -> str:
        return "\n".join(c.tail(n) for c in self.containers.values())
