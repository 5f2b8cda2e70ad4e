#!/usr/bin/env python3
"""Checks the pushdial Helm chart (helm/pushdial) and the Dockerfile without a cluster.

Run through scripts/helm-check, which prepares the virtualenv (.pushdial/helm-venv) with
jsonschema, kubernetes-validate, hadolint and two real helm binaries (3 and 4, taken from
PyPI packages that ship them). What is checked:

1. values.yaml (with only an encryption key added: helm/check/defaults-values.yaml) and
   each ci/*.yaml, merged as Helm merges them, against values.schema.json
   (draft-07); each invalid-values/*.yaml is rejected (by the schema or by the templates,
   as its header says, with the message it names).
2. `helm lint --strict` and `helm template` with helm 3 and helm 4, for the defaults and
   each ci/*.yaml; both helms render the same objects.
3. Every rendered object against the Kubernetes OpenAPI schemas (kubernetes-validate,
   strict: unknown fields are errors) for the oldest Kubernetes the chart supports and a
   recent one. The ServiceMonitor (a CRD) has no schema there; its fields are asserted.
4. Assertions on what the chart promises: non-root, read-only, capability-free pods;
   probe paths; the migration hook; a Deployment, HPA and PDB per component; settings
   reach the ConfigMap and secrets never leave Secrets; every variable the binary reads
   can be set; the Dockerfile (hadolint and its essentials).

Prints one line per check and `N passed, M failed`; exits 1 when anything failed.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "pushdial"
CHECK_DIR = ROOT / "helm" / "check"
VENV = ROOT / ".pushdial" / "helm-venv"
HELMS = {"helm3": VENV / "bin" / "helm3", "helm4": VENV / "bin" / "helm4"}
HADOLINT = VENV / "bin" / "hadolint"
RELEASE = "pushdial"
NAMESPACE = "pushdial"
# The chart's kubeVersion floor, and a recent release.
KUBE_VERSIONS = ["1.25.0", "1.33.0"]
COMPONENTS = ("api", "worker")
# The binary's defaults of the settings the checks reason about.
DEFAULT_DRAIN = "5s"
DEFAULT_GRACE = "10s"
# Secret environment variables (never in the ConfigMap), set through `secrets.*`.
SECRET_ENV = {
    "DATABASE_URL",
    "REDIS_URL",
    "PUSHDIAL_ENCRYPTION_KEY",
    "PUSHDIAL_ENCRYPTION_KEYS_PREVIOUS",
    "PUSHDIAL_VAPID_PRIVATE_KEY",
    "PUSHDIAL_METRICS_TOKEN",
}


# --------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed: list[str] = []

    def check(self, name: str, fn: Callable[[], Iterable[str] | None]) -> Any:
        """Runs fn, which returns (or yields) problems; none means the check passed."""
        started = time.monotonic()
        try:
            problems = list(fn() or [])
        except Exception as e:  # a crash in a check is a failure of that check
            problems = [f"{type(e).__name__}: {e}"]
        took = time.monotonic() - started
        if problems:
            self.failed.append(name)
            print(f"FAIL {name} ({took:.1f}s)")
            for p in problems:
                print(f"     - {p}")
        else:
            self.passed += 1
            print(f"ok   {name} ({took:.1f}s)")
        sys.stdout.flush()


# --------------------------------------------------------------------------------------
# Values: loading and merging as Helm does
# --------------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    with path.open() as f:
        return yaml.safe_load(f) or {}


def coalesce(defaults: Any, override: Any) -> Any:
    """Helm's merge of user values over the chart's: maps merge deeply, anything else is
    replaced, and a null removes the key."""
    if not isinstance(defaults, dict) or not isinstance(override, dict):
        return copy.deepcopy(override)
    out = copy.deepcopy(defaults)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = coalesce(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def value_sets() -> list[tuple[str, Path | None]]:
    """(name, override file) for the defaults and each ci/*.yaml. The defaults alone are
    refused (they hold no encryption key: invalid-values/empty-encryption-key.yaml), so
    they are checked with one, and nothing else, added."""
    sets: list[tuple[str, Path | None]] = [("defaults", CHECK_DIR / "defaults-values.yaml")]
    sets += [(f"ci/{p.name}", p) for p in sorted((CHART / "ci").glob("*.yaml"))]
    return sets


def merged_values(override: Path | None) -> dict:
    values = load_yaml(CHART / "values.yaml")
    return coalesce(values, load_yaml(override)) if override else values


def invalid_files() -> list[tuple[Path, str, str]]:
    """(file, rejected-by, expected error text) from each invalid-values file's header."""
    out = []
    for path in sorted((CHECK_DIR / "invalid-values").glob("*.yaml")):
        header = dict(
            re.findall(r"^# (rejected-by|error): (.+)$", path.read_text(), re.MULTILINE)
        )
        out.append((path, header.get("rejected-by", ""), header.get("error", "")))
    return out


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


def helm(binary: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(HELMS[binary]), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"HOME": str(VENV), "HELM_CACHE_HOME": str(VENV / "helm-cache"),
             "HELM_CONFIG_HOME": str(VENV / "helm-config"),
             "HELM_DATA_HOME": str(VENV / "helm-data"), "PATH": "/usr/bin:/bin",
             # No cluster, ever: a client-only dry run must not find a real kubeconfig.
             "KUBECONFIG": str(VENV / "no-kubeconfig")},
    )


def template_args(override: Path | None) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    if override:
        args += ["--values", str(override)]
    return args


def render(binary: str, override: Path | None) -> list[dict]:
    res = helm(binary, *template_args(override))
    if res.returncode != 0:
        raise RuntimeError(f"{binary} template failed: {res.stderr.strip()}")
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def key(doc: dict) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


# --------------------------------------------------------------------------------------
# Helpers for the assertions
# --------------------------------------------------------------------------------------


def parse_duration(s: str) -> float:
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)", s)
    if not m:
        raise ValueError(f"not a duration: {s}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def env_name(config_key: str) -> str:
    """config.limitIpPerSecond -> PUSHDIAL_LIMIT_IP_PER_SECOND (the chart's table must agree)."""
    return "PUSHDIAL_" + re.sub(r"(?<!^)(?=[A-Z])", "_", config_key).upper()


def env_value(value: Any) -> str | None:
    """What the chart should put in the ConfigMap for a config value (None: left out)."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def find(docs: list[dict], kind: str, name: str) -> dict | None:
    return next((d for d in by_kind(docs, kind) if d["metadata"]["name"] == name), None)


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    out = []
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            out.append((key(d), d["spec"]["template"]["spec"]))
        elif d["kind"] == "Pod":
            out.append((key(d), d["spec"]))
    return out


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def string_leaves(obj: Any) -> Iterable[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            yield from string_leaves(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from string_leaves(v)
    elif obj is not None:
        yield str(obj)


def secret_values(values: dict) -> list[str]:
    """The secret material given in values (what must stay inside Secrets)."""
    s = values.get("secrets", {})
    found = [
        values.get("database", {}).get("url", ""),
        values.get("redis", {}).get("url", ""),
        s.get("encryptionKey", ""),
        s.get("encryptionKeysPrevious", ""),
        s.get("vapidPrivateKey", ""),
        s.get("fcmCredentials", {}).get("content", ""),
        s.get("apnsKey", {}).get("content", ""),
        *[str(v) for v in values.get("secretEnv", {}).values()],
    ]
    return [v for v in found if v]


def secret_fragments(secret: str) -> list[str]:
    """The secret and each of its longer lines (multi-line files such as a .p8 key)."""
    lines = [ln.strip() for ln in secret.splitlines() if len(ln.strip()) >= 12]
    return [secret] + [ln for ln in lines if not ln.startswith("-----")]


# --------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------


def schema() -> dict:
    return json.loads((CHART / "values.schema.json").read_text())


def check_schema_itself() -> Iterable[str]:
    s = schema()
    if s.get("$schema") != "http://json-schema.org/draft-07/schema#":
        yield "values.schema.json must declare draft-07"
    try:
        jsonschema.Draft7Validator.check_schema(s)
    except jsonschema.SchemaError as e:
        yield f"values.schema.json is not a valid draft-07 schema: {e.message}"
    if s.get("additionalProperties") is not False:
        yield "the root of values.schema.json must set additionalProperties: false"


def schema_errors(values: dict) -> list[str]:
    v = jsonschema.Draft7Validator(schema())
    return [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in sorted(v.iter_errors(values), key=lambda e: list(e.absolute_path))]


def check_values_valid(override: Path | None) -> Iterable[str]:
    yield from schema_errors(merged_values(override))


def check_invalid_rejected() -> Iterable[str]:
    files = invalid_files()
    if len(files) < 3:
        yield "expected several helm/check/invalid-values/*.yaml files"
    for path, by, expected in files:
        name = path.name
        if by not in ("schema", "template") or not expected:
            yield f"{name}: header needs '# rejected-by: schema|template' and '# error: …'"
            continue
        errors = schema_errors(merged_values(path))
        if by == "schema":
            if not errors:
                yield f"{name}: the schema accepted it"
            elif not any(expected in e for e in errors):
                yield f"{name}: schema errors do not mention {expected!r}: {errors}"
        elif errors:
            yield f"{name}: meant for the templates, but the schema rejects it: {errors}"
        for binary in HELMS:
            res = helm(binary, *template_args(path))
            if res.returncode == 0:
                yield f"{name}: {binary} template accepted it"
            # helm 4 names a value by its JSON pointer (/config/listen), helm 3 by a path.
            elif expected not in res.stderr and expected not in res.stderr.replace("/", "."):
                yield f"{name}: {binary} failed without {expected!r}: {res.stderr.strip()[-300:]}"


def check_lint(binary: str) -> Iterable[str]:
    for name, override in value_sets():
        args = ["lint", str(CHART), "--strict"]
        if override:
            args += ["--values", str(override)]
        res = helm(binary, *args)
        if res.returncode != 0:
            yield f"{name}: {(res.stdout + res.stderr).strip()}"


def check_notes() -> Iterable[str]:
    """NOTES.txt (which `helm template` skips) renders: helm 4's client-only dry run needs
    no cluster. Its warnings appear exactly when something essential is missing."""
    for name, override in value_sets():
        args = ["install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client"]
        if override:
            args += ["--values", str(override)]
        res = helm("helm4", *args)
        if res.returncode != 0 or "NOTES:" not in res.stdout:
            yield f"{name}: {(res.stdout + res.stderr).strip()[-400:]}"
            continue
        notes = res.stdout.split("NOTES:", 1)[1]
        values = merged_values(override)
        complete = (values["database"].get("url") or values["database"].get("existingSecret")) and (
            values["redis"].get("url") or values["redis"].get("existingSecret"))
        if complete and "WARNINGS" in notes:
            yield f"{name}: NOTES warn although the database and Redis are set: {notes.strip()}"
        if not complete and "No PostgreSQL configured" not in notes:
            yield f"{name}: NOTES do not warn that PostgreSQL is not configured"


def check_helms_agree(renders: dict) -> Iterable[str]:
    for name, _ in value_sets():
        a = {key(d): d for d in renders[("helm3", name)]}
        b = {key(d): d for d in renders[("helm4", name)]}
        if a.keys() != b.keys():
            yield f"{name}: objects differ: {sorted(a.keys() ^ b.keys())}"
        for k in a.keys() & b.keys():
            if a[k] != b[k]:
                yield f"{name}: {k} differs between helm 3 and helm 4"


def check_kubernetes_schemas(docs: list[dict], version: str) -> Iterable[str]:
    for d in docs:
        try:
            kubernetes_validate.validate(d, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            yield f"{key(d)}: {path}: {e.message}"
        except kubernetes_validate.SchemaNotFoundError:
            if not d.get("apiVersion", "").startswith("monitoring.coreos.com/"):
                yield f"{key(d)}: no Kubernetes schema for {d.get('apiVersion')} {d.get('kind')}"


def check_security(docs: list[dict]) -> Iterable[str]:
    specs = pod_specs(docs)
    if not specs:
        yield "no pods rendered"
    for name, spec in specs:
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            yield f"{name}: pod securityContext.runAsNonRoot is not true"
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            yield f"{name}: pod seccompProfile is not RuntimeDefault"
        if spec.get("automountServiceAccountToken") is not False:
            yield f"{name}: automountServiceAccountToken is not false"
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            sc = c.get("securityContext", {})
            cname = f"{name} container {c['name']}"
            if sc.get("readOnlyRootFilesystem") is not True:
                yield f"{cname}: readOnlyRootFilesystem is not true"
            if sc.get("allowPrivilegeEscalation") is not False:
                yield f"{cname}: allowPrivilegeEscalation is not false"
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                yield f"{cname}: capabilities do not drop ALL"
            if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
                yield f"{cname}: runAsNonRoot is not true"
            if sc.get("runAsUser", psc.get("runAsUser", 1)) == 0:
                yield f"{cname}: runs as uid 0"
            if sc.get("privileged"):
                yield f"{cname}: privileged"
            if "resources" not in c:
                yield f"{cname}: no resources"


def check_workloads(docs: list[dict], values: dict) -> Iterable[str]:
    listen_port = int(re.search(r"([0-9]+)$", values["config"]["listen"]).group(1))
    drain = parse_duration(values["config"].get("shutdownDrain") or DEFAULT_DRAIN)
    grace = parse_duration(values["config"].get("shutdownGrace") or DEFAULT_GRACE)
    deployments = by_kind(docs, "Deployment")
    if sorted(d["metadata"]["name"].rsplit("-", 1)[-1] for d in deployments) != ["api", "worker"]:
        yield f"expected the api and worker Deployments, got {[key(d) for d in deployments]}"
    pod_labels = {}
    for comp in COMPONENTS:
        c = values[comp]
        dep = next((d for d in deployments if d["metadata"]["name"].endswith(f"-{comp}")), None)
        if dep is None:
            continue
        name = key(dep)
        spec = dep["spec"]
        tmpl = spec["template"]
        labels = tmpl["metadata"]["labels"]
        pod_labels[comp] = labels
        if not selects(spec["selector"]["matchLabels"], labels):
            yield f"{name}: its selector does not select its own pods"
        pod = tmpl["spec"]
        (container,) = pod["containers"]
        if container.get("args", [])[:1] != [comp]:
            yield f"{name}: args {container.get('args')} do not start with {comp!r}"
        if container.get("command"):
            yield f"{name}: overrides the image's ENTRYPOINT"
        probes = {p: container.get(p, {}).get("httpGet", {}) for p in
                  ("livenessProbe", "readinessProbe", "startupProbe")}
        want = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
        for p, path in want.items():
            if probes[p].get("path") != path or probes[p].get("port") != "http":
                yield f"{name}: {p} is {probes[p]}, expected GET {path} on port http"
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        if ports.get("http") != listen_port:
            yield f"{name}: containerPort {ports} does not match PUSHDIAL_LISTEN port {listen_port}"
        tgp = pod.get("terminationGracePeriodSeconds", 30)
        if tgp <= drain + grace:
            yield f"{name}: terminationGracePeriodSeconds {tgp} is not above drain {drain}s + grace {grace}s"
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        if "emptyDir" not in volumes.get(mounts.get("/tmp", ""), {}):
            yield f"{name}: no emptyDir at /tmp"
        annotations = tmpl["metadata"].get("annotations", {})
        for a in ("checksum/config", "checksum/secret"):
            if a not in annotations:
                yield f"{name}: pod template lacks the {a} annotation"
        if not values["image"].get("digest") and not values["image"].get("tag"):
            app_version = load_yaml(CHART / "Chart.yaml")["appVersion"]
            if not container["image"].endswith(f":{app_version}"):
                yield f"{name}: image {container['image']} is not tagged with appVersion {app_version}"
        # Autoscaling: an HPA per component, and then the Deployment leaves replicas to it.
        hpa = find(docs, "HorizontalPodAutoscaler", dep["metadata"]["name"])
        if c["autoscaling"]["enabled"]:
            if hpa is None:
                yield f"{name}: autoscaling is enabled but there is no HPA"
            else:
                ref = hpa["spec"]["scaleTargetRef"]
                if (ref["kind"], ref["name"]) != ("Deployment", dep["metadata"]["name"]):
                    yield f"{key(hpa)}: targets {ref}"
                if hpa["spec"]["minReplicas"] != c["autoscaling"]["minReplicas"]:
                    yield f"{key(hpa)}: minReplicas differs from values"
            if "replicas" in spec:
                yield f"{name}: sets replicas although an HPA scales it"
        else:
            if hpa is not None:
                yield f"{name}: autoscaling is disabled but an HPA exists"
            if spec.get("replicas") != c["replicaCount"]:
                yield f"{name}: replicas {spec.get('replicas')} != replicaCount {c['replicaCount']}"
        pdb = find(docs, "PodDisruptionBudget", dep["metadata"]["name"])
        if c["podDisruptionBudget"]["enabled"]:
            if pdb is None:
                yield f"{name}: no PodDisruptionBudget"
            elif not selects(pdb["spec"]["selector"]["matchLabels"], labels):
                yield f"{key(pdb)}: does not select the {comp} pods"
        elif pdb is not None:
            yield f"{name}: a PodDisruptionBudget although disabled"
    # Each component's selectors leave the other's pods alone.
    for d in by_kind(docs, "Deployment") + by_kind(docs, "PodDisruptionBudget"):
        comp = d["metadata"]["name"].rsplit("-", 1)[-1]
        other = "worker" if comp == "api" else "api"
        if other in pod_labels and selects(d["spec"]["selector"]["matchLabels"], pod_labels[other]):
            yield f"{key(d)}: its selector also matches the {other} pods"


def check_network(docs: list[dict], values: dict) -> Iterable[str]:
    deployments = {d["metadata"]["name"].rsplit("-", 1)[-1]: d for d in by_kind(docs, "Deployment")}
    api_labels = deployments["api"]["spec"]["template"]["metadata"]["labels"]
    worker_labels = deployments["worker"]["spec"]["template"]["metadata"]["labels"]
    services = by_kind(docs, "Service")
    api_svc = [s for s in services if selects(s["spec"]["selector"], api_labels)]
    if len(api_svc) != 1:
        yield f"expected one Service for the api pods, got {[key(s) for s in api_svc]}"
        return
    api_svc = api_svc[0]
    if selects(api_svc["spec"]["selector"], worker_labels):
        yield f"{key(api_svc)}: also selects the worker pods"
    # The api's metrics have a port of their own (config.metricsListen), which the Service
    # carries for scraping and the Ingress never routes to (checked below).
    metrics_port = values["config"].get("metricsListen") or ""
    wanted_ports = ["http", "metrics"] if metrics_port else ["http"]
    if [p["targetPort"] for p in api_svc["spec"]["ports"]] != wanted_ports:
        yield f"{key(api_svc)}: targets {[p['targetPort'] for p in api_svc['spec']['ports']]}, not {wanted_ports}"
    (api_container,) = deployments["api"]["spec"]["template"]["spec"]["containers"]
    exposed = {p["name"]: p["containerPort"] for p in api_container.get("ports", [])}
    if metrics_port and exposed.get("metrics") != int(re.search(r"[0-9]+$", metrics_port).group(0)):
        yield f"{key(deployments['api'])}: no container port `metrics` for config.metricsListen"
    ingresses = by_kind(docs, "Ingress")
    if values["ingress"]["enabled"] != bool(ingresses):
        yield f"ingress.enabled is {values['ingress']['enabled']} but {len(ingresses)} Ingress rendered"
    for ing in ingresses:
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                svc = p["backend"]["service"]
                if svc["name"] != api_svc["metadata"]["name"] or svc["port"] != {"name": "http"}:
                    yield f"{key(ing)}: path {p['path']} goes to {svc}, not the api Service"
        if values["ingress"].get("nginxWebsocketAnnotations"):
            ann = ing["metadata"].get("annotations", {})
            for a in ("proxy-read-timeout", "proxy-send-timeout"):
                v = ann.get(f"nginx.ingress.kubernetes.io/{a}")
                if v is None or int(v) < 3600:
                    yield f"{key(ing)}: {a} is {v!r}; WebSockets need an hour or more"
    monitors = by_kind(docs, "ServiceMonitor")
    if values["metrics"]["serviceMonitor"]["enabled"]:
        if len(monitors) != 2:
            yield f"expected a ServiceMonitor per component, got {len(monitors)}"
        for m in monitors:
            if not any(selects(m["spec"]["selector"]["matchLabels"], s["metadata"]["labels"]) for s in services):
                yield f"{key(m)}: selects no Service"
            port = "metrics" if metrics_port and m["metadata"]["name"].endswith("-api") else "http"
            if [(e["port"], e["path"]) for e in m["spec"]["endpoints"]] != [(port, "/metrics")]:
                yield f"{key(m)}: does not scrape {port} /metrics"
    elif monitors:
        yield "ServiceMonitors rendered although disabled"
    if values["metrics"]["podAnnotations"]:
        for comp, d in deployments.items():
            ann = d["spec"]["template"]["metadata"].get("annotations", {})
            if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/path") != "/metrics":
                yield f"{key(d)}: no prometheus.io scrape annotations"
    tests = [d for d in by_kind(docs, "Pod") if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    if len(tests) != 1:
        yield f"expected one `helm test` pod, got {len(tests)}"
    elif not any("/healthz" in a for a in tests[0]["spec"]["containers"][0].get("args", [])):
        yield f"{key(tests[0])}: does not fetch /healthz"


def check_migration(docs: list[dict], values: dict) -> Iterable[str]:
    jobs = by_kind(docs, "Job")
    if not values["migration"]["enabled"]:
        if jobs:
            yield "a migration Job although migration.enabled is false"
        return
    if len(jobs) != 1:
        yield f"expected one migration Job, got {len(jobs)}"
        return
    job = jobs[0]
    ann = job["metadata"].get("annotations", {})
    if ann.get("helm.sh/hook") != "pre-install,pre-upgrade":
        yield f"{key(job)}: helm.sh/hook is {ann.get('helm.sh/hook')!r}"
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    if c.get("args") != ["migrate"]:
        yield f"{key(job)}: args {c.get('args')} are not ['migrate']"
    if pod.get("restartPolicy") != "Never":
        yield f"{key(job)}: restartPolicy is not Never"
    # A pre-install hook runs before the release's ordinary objects exist: it may use only
    # hook objects created before it, or objects outside the release.
    def is_hook(d: dict) -> bool:
        return "helm.sh/hook" in d["metadata"].get("annotations", {})
    weight = int(ann.get("helm.sh/hook-weight", "0"))
    plain = {key(d) for d in docs if not is_hook(d)}
    refs = []
    for src in c.get("envFrom", []):
        if "secretRef" in src:
            refs.append(("Secret", src["secretRef"]["name"]))
        if "configMapRef" in src:
            refs.append(("ConfigMap", src["configMapRef"]["name"]))
    for e in c.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            refs.append(("Secret", ref["name"]))
    for v in pod.get("volumes", []):
        if "secret" in v:
            refs.append(("Secret", v["secret"]["secretName"]))
        if "configMap" in v:
            refs.append(("ConfigMap", v["configMap"]["name"]))
    if pod.get("serviceAccountName"):
        refs.append(("ServiceAccount", pod["serviceAccountName"]))
    for kind, name in refs:
        if f"{kind}/{name}" in plain:
            yield f"{key(job)}: uses {kind}/{name}, which does not exist yet when a pre-install hook runs"
        hook = find(docs, kind, name)
        if hook is not None and is_hook(hook):
            hw = int(hook["metadata"]["annotations"].get("helm.sh/hook-weight", "0"))
            if hw >= weight or hook["metadata"]["annotations"]["helm.sh/hook"] != ann.get("helm.sh/hook"):
                yield f"{key(job)}: {kind}/{name} is not a hook created before it"
    if values["database"].get("url") and not any(k == "Secret" for k, _ in refs):
        yield f"{key(job)}: database.url is set but the Job reads no Secret"


def check_settings(docs: list[dict], values: dict) -> Iterable[str]:
    cms = by_kind(docs, "ConfigMap")
    if len(cms) != 1:
        yield f"expected one ConfigMap, got {len(cms)}"
        return
    data = cms[0].get("data", {})
    config = values["config"]
    for k, v in config.items():
        want = env_value(v)
        name = env_name(k)
        if k == "publicUrl" and want is None and values["ingress"]["enabled"]:
            host = values["ingress"]["hosts"][0]["host"]
            tls = any(host in t.get("hosts", []) for t in values["ingress"].get("tls", []))
            want = f"{'https' if tls else 'http'}://{host}"
        if data.get(name) != want:
            yield f"config.{k} = {v!r}: ConfigMap has {name}={data.get(name)!r}, expected {want!r}"
    for name in data:
        if name in SECRET_ENV:
            yield f"the ConfigMap carries the secret variable {name}"
    # The deployments read the ConfigMap and (when there is one) the chart's Secret.
    secrets = {d["metadata"]["name"]: d for d in by_kind(docs, "Secret")}
    for d in by_kind(docs, "Deployment"):
        (c,) = d["spec"]["template"]["spec"]["containers"]
        refs = [list(s.values())[0]["name"] for s in c.get("envFrom", [])]
        if cms[0]["metadata"]["name"] not in refs:
            yield f"{key(d)}: does not read the ConfigMap"
        for name, s in secrets.items():
            if "helm.sh/hook" not in s["metadata"].get("annotations", {}) and not name.endswith("-push") and name not in refs:
                yield f"{key(d)}: does not read the Secret {name}"
        if values.get("existingSecret") and values["existingSecret"] not in refs:
            yield f"{key(d)}: does not read existingSecret"
        envs = {e["name"]: e for e in c.get("env", [])}
        for svc in ("database", "redis"):
            if values[svc].get("existingSecret"):
                var = "DATABASE_URL" if svc == "database" else "REDIS_URL"
                ref = envs.get(var, {}).get("valueFrom", {}).get("secretKeyRef", {})
                if ref != {"name": values[svc]["existingSecret"], "key": values[svc]["existingSecretKey"]}:
                    yield f"{key(d)}: {var} is not read from {svc}.existingSecret"
        mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
        for var, path in (("PUSHDIAL_FCM_CREDENTIALS", "/etc/pushdial/fcm/credentials.json"),
                          ("PUSHDIAL_APNS_KEY", "/etc/pushdial/apns/key.p8")):
            if var in data and (data[var] != path or str(Path(path).parent) not in mounts):
                yield f"{key(d)}: {var}={data.get(var)} but {Path(path).parent} is not mounted"


def check_secrets_stay_secret(docs: list[dict], values: dict) -> Iterable[str]:
    secrets = secret_values(values)
    decoded = []
    for s in by_kind(docs, "Secret"):
        for v in (s.get("data") or {}).values():
            decoded.append(base64.b64decode(v).decode())
        decoded.extend((s.get("stringData") or {}).values())
    for secret in secrets:
        if not any(secret == v for v in decoded):
            yield f"a secret value from values ({secret[:12]}…) is in no Secret"
        for d in docs:
            if d["kind"] == "Secret":
                continue
            leaves = list(string_leaves(d))
            for frag in secret_fragments(secret):
                if any(frag in leaf for leaf in leaves):
                    where = "a ConfigMap" if d["kind"] == "ConfigMap" else key(d)
                    yield f"a secret value ({frag[:12]}…) appears in {where}"
                    break


def check_full_coverage() -> Iterable[str]:
    """ci/full-values.yaml sets every config key, and every variable the binary reads (in
    core/src/config.rs and the README's table) can be set by the chart."""
    full = CHART / "ci" / "full-values.yaml"
    props = set(schema()["properties"]["config"]["properties"])
    missing = props - set(load_yaml(full)["config"])
    if missing:
        yield f"ci/full-values.yaml does not set config.{sorted(missing)}"
    docs = render("helm3", full)
    settable = set(by_kind(docs, "ConfigMap")[0]["data"]) | SECRET_ENV
    for s in by_kind(docs, "Secret"):
        settable |= set((s.get("data") or {}).keys())
    wanted: dict[str, str] = {}
    config_rs = ROOT / "core" / "src" / "config.rs"
    if config_rs.exists():
        for name in re.findall(r'env\s*=\s*"([A-Z_]+)"', config_rs.read_text()):
            wanted[name] = "core/src/config.rs"
    readme = ROOT / "README.md"
    if readme.exists():
        for name in re.findall(r"^\| `((?:PUSHDIAL|DATABASE|REDIS)_[A-Z_]+)` \|", readme.read_text(), re.M):
            wanted.setdefault(name, "README.md")
    if not wanted:
        yield "found no environment variables in core/src/config.rs or README.md"
    for name, where in sorted(wanted.items()):
        if name not in settable:
            yield f"{name} (from {where}) cannot be set through the chart's values"


def check_dockerfile() -> Iterable[str]:
    dockerfile = ROOT / "Dockerfile"
    text = dockerfile.read_text()
    res = subprocess.run([str(HADOLINT), "--no-color", str(dockerfile)], capture_output=True, text=True)
    if res.returncode != 0:
        yield f"hadolint: {(res.stdout + res.stderr).strip()}"
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    if len(stages) < 2:
        yield "expected a multi-stage build"
    else:
        if not re.match(r"rust:\S*bookworm$", stages[0][0]):
            yield f"the builder is {stages[0][0]}, expected rust:…bookworm"
        if not re.search(r"(distroless/cc-debian12|debian:bookworm-slim)", stages[-1][0]):
            yield f"the runtime image is {stages[-1][0]}"
    if not re.search(r"cargo build --release --locked -p pushdial\b", text):
        yield "no `cargo build --release --locked -p pushdial`"
    if not re.search(r"SQLX_OFFLINE=true", text):
        yield "SQLX_OFFLINE=true is not set for the build"
    if 'ENTRYPOINT ["/usr/local/bin/pushdial"]' not in text:
        yield 'ENTRYPOINT is not ["/usr/local/bin/pushdial"]'
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    if not user or user[-1].split(":")[0] != "10001":
        yield f"the final USER is {user[-1] if user else None}, expected 10001"
    if not any((ROOT / ".sqlx").glob("query-*.json")):
        yield ".sqlx/ holds no offline query data: the offline build would fail"
    ignore = [ln.strip().rstrip("/") for ln in (ROOT / ".dockerignore").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    for needed in ("target", ".git", ".pushdial"):
        if needed not in ignore:
            yield f".dockerignore does not exclude {needed}/"
    members = re.findall(r'"([^"]+)"', re.search(r"members\s*=\s*\[([^\]]*)\]",
                                                  (ROOT / "Cargo.toml").read_text()).group(1))
    for needed in ["Cargo.toml", "Cargo.lock", ".sqlx", "migrations", "src", "tests", *members]:
        if needed in ignore:
            yield f".dockerignore excludes {needed}, which the build needs"


# --------------------------------------------------------------------------------------


def main() -> int:
    missing = [str(p) for p in [*HELMS.values(), HADOLINT] if not p.exists()]
    if missing:
        print(f"missing tools {missing}: run scripts/helm-check, which installs them")
        return 2
    report = Report()
    report.check("values.schema.json is a strict draft-07 schema", check_schema_itself)
    for name, override in value_sets():
        report.check(f"schema accepts {name}", lambda o=override: check_values_valid(o))
    report.check("invalid values are rejected (schema / templates)", check_invalid_rejected)
    for binary in HELMS:
        report.check(f"{binary} lint --strict (defaults, ci/*)", lambda b=binary: check_lint(b))

    report.check("NOTES.txt renders (helm 4 install --dry-run=client)", check_notes)
    renders: dict[tuple[str, str], list[dict]] = {}

    def render_all() -> Iterable[str]:
        for binary in HELMS:
            for name, override in value_sets():
                try:
                    renders[(binary, name)] = render(binary, override)
                except RuntimeError as e:
                    yield f"{name}: {e}"

    report.check("helm template with helm 3 and helm 4", render_all)
    if any(("helm3", n) not in renders for n, _ in value_sets()):
        print("cannot go on without the renders")
    else:
        report.check("helm 3 and helm 4 render the same objects", lambda: check_helms_agree(renders))
        for name, override in value_sets():
            docs = renders[("helm3", name)]
            values = merged_values(override)
            for version in KUBE_VERSIONS:
                report.check(f"{name}: Kubernetes {version} schemas (strict), {len(docs)} objects",
                             lambda d=docs, v=version: check_kubernetes_schemas(d, v))
            report.check(f"{name}: pod security", lambda d=docs: check_security(d))
            report.check(f"{name}: Deployments, probes, HPAs, PDBs",
                         lambda d=docs, v=values: check_workloads(d, v))
            report.check(f"{name}: Services, Ingress, metrics, helm test",
                         lambda d=docs, v=values: check_network(d, v))
            report.check(f"{name}: migration hook", lambda d=docs, v=values: check_migration(d, v))
            report.check(f"{name}: settings reach the ConfigMap",
                         lambda d=docs, v=values: check_settings(d, v))
            report.check(f"{name}: secret values only in Secrets",
                         lambda d=docs, v=values: check_secrets_stay_secret(d, v))
    report.check("every variable the binary reads can be set", check_full_coverage)
    report.check("Dockerfile and .dockerignore", check_dockerfile)

    print(f"{report.passed} passed, {len(report.failed)} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
