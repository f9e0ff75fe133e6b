"""A real Kubernetes control plane for tests and benchmarks: etcd, kube-apiserver and
kube-controller-manager on loopback, with our CRDs and RBAC applied from ``manifests/`` as they are.

The server binaries come from the folder named by ``HYBRIDLAY_KUBE_BINARIES`` (default
``../shared/kubernetes`` from the repository root): the ``.xz`` files there are unpacked once into a
cache and checked against its ``SHA256SUMS``; a folder of plain binaries (an official release's
``kubernetes/server/bin``) is used as it is. etcd is Debian's ``etcd-server``.

Identities: an admin (group ``system:masters``) for what a test does as the cluster's owner, and our
ServiceAccounts (``hybridlay-operator``, ``hybridlay-agent``) with tokens from the TokenRequest API,
so what runs as one of them has exactly the rights of ``manifests/`` RBAC.

The controller manager runs the garbage collector and the StatefulSet, ReplicaSet, namespace and
service-account controllers (all but node IPAM and node lifecycle: there are no kubelets; a test
acts as the kubelet through :class:`KubeletStandIn`, and as the scheduler by binding pods).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

# The binaries' setting, unpacking and cache belong to the lab (issue 14); re-exported for the tests.
from hybridlay_lab.kubebins import BINARIES_SETTING, Unavailable, binaries_folder, kube_binaries  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
SYSTEM_NAMESPACE = "hybridlay-system"
OPERATOR_SA = "hybridlay-operator"
AGENT_SA = "hybridlay-agent"
READY_TIMEOUT = 90.0


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_tls_files(directory: Path, hostname: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``hostname`` signed by it: (ca.crt, tls.crt, tls.key).

    As the install role makes them for the webhook Service; here for the loopback address.
    """
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hybridlay-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(hostname))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.crt", directory / "tls.crt", directory / "tls.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].chmod(0o600)
    return paths


def etcd_binary() -> str:
    found = shutil.which("etcd")
    if found is None:
        raise Unavailable("etcd is not installed (Debian's etcd-server; requirements/apt-kube.txt)")
    return found


@dataclass
class Process:
    """One control-plane process with its log; ``check()`` fails with the log's tail if it died."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
            )

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}; its log ends:\n{self.tail()}")

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


@dataclass
class RealCluster:
    """A running control plane. Use as a context manager, or :func:`running_cluster`."""

    workdir: Path
    binaries: Path = field(default_factory=lambda: kube_binaries(("kube-apiserver", "kube-controller-manager")))
    # False: the CRDs, namespace and RBAC are not applied (a test installs them its own way).
    with_manifests: bool = True
    processes: list[Process] = field(default_factory=list)
    port: int = 0
    admin_token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "certs" / "apiserver.crt"

    # --- start and stop --------------------------------------------------------------------------------

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        etcd_port = free_port()
        self._spawn(
            "etcd",
            [
                etcd_binary(),
                "--data-dir",
                str(self.workdir / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{free_port()}",
                "--quota-backend-bytes",
                str(4 << 30),
            ],
            env=dict(os.environ, ETCD_UNSUPPORTED_ARCH=os.environ.get("ETCD_UNSUPPORTED_ARCH", "")),
        )
        key = self._service_account_key()
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f"{self.admin_token},admin,admin,system:masters\n")
        tokens.chmod(0o600)
        self.port = free_port()
        self._spawn(
            "kube-apiserver",
            [
                str(self.binaries / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--secure-port={self.port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--service-account-key-file={key}",
                f"--service-account-signing-key-file={key}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--api-audiences=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--authorization-mode=Node,RBAC",
                f"--token-auth-file={tokens}",
                "--profiling=false",
                # The agent's DaemonSet runs privileged (it programs the node's network).
                "--allow-privileged=true",
                # The operator benchmark creates thousands of objects a second from one client.
                "--max-requests-inflight=800",
                "--max-mutating-requests-inflight=400",
            ],
        )
        self._wait_ready()
        admin = self.write_kubeconfig(self.workdir / "admin.kubeconfig")
        self._spawn(
            "kube-controller-manager",
            [
                str(self.binaries / "kube-controller-manager"),
                f"--kubeconfig={admin}",
                f"--service-account-private-key-file={key}",
                f"--root-ca-file={self.ca_file}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                "--secure-port=0",
                # No kubelets here: nothing allocates pod CIDRs, and nodes must not be tainted unreachable.
                "--controllers=*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route",
                "--concurrent-gc-syncs=10",
            ],
        )
        if self.with_manifests:
            self.apply_manifests()
        self._wait_for_default_service_account()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def check(self) -> None:
        """Fail (with the log's tail) when a control-plane process has died."""
        for process in self.processes:
            process.check()

    def __enter__(self) -> RealCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        process = Process(name, argv, self.workdir / f"{name}.log", env)
        process.start()
        self.processes.append(process)
        return process

    def _service_account_key(self) -> Path:
        path = self.workdir / "sa.key"
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        path.chmod(0o600)
        return path

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            self.check()
            if self.ca_file.exists():
                try:
                    answer = self._raw_get("/readyz")
                except OSError:
                    answer = ""
                if answer == "ok":
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"kube-apiserver not ready in {READY_TIMEOUT} s; its log ends:\n{self.processes[-1].tail()}"
                )
            time.sleep(0.25)

    def _raw_get(self, path: str) -> str:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(self.server + path, headers={"Authorization": f"Bearer {self.admin_token}"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, context=context, timeout=5) as answer:  # noqa: S310
                return str(answer.read().decode())
        except urllib.error.HTTPError:
            return ""

    def _wait_for_default_service_account(self) -> None:
        """Pods can be created in ``default`` only once the service-account controller made its account."""
        core = kubernetes.client.CoreV1Api(self.client())
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            self.check()
            with contextlib.suppress(kubernetes.client.ApiException):
                core.read_namespaced_service_account("default", "default")
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the controller manager made no default ServiceAccount")
            time.sleep(0.25)

    # --- identities and clients ---------------------------------------------------------------------------

    def write_kubeconfig(self, path: Path, token: str | None = None, user: str = "admin") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "real", "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)}}
            ],
            "users": [{"name": user, "user": {"token": token or self.admin_token}}],
            "contexts": [{"name": "real", "context": {"cluster": "real", "user": user}}],
            "current-context": "real",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def client(self, token: str | None = None) -> kubernetes.client.ApiClient:
        configuration = kubernetes.client.Configuration()
        configuration.host = self.server
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.api_key = {"authorization": f"Bearer {token or self.admin_token}"}
        configuration.connection_pool_maxsize = 32
        return kubernetes.client.ApiClient(configuration)

    def service_account_token(self, name: str, namespace: str = SYSTEM_NAMESPACE, hours: int = 24) -> str:
        """A token of the ServiceAccount, from the TokenRequest API (as the kubelet mounts one)."""
        core = kubernetes.client.CoreV1Api(self.client())
        request = {"spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": hours * 3600}}
        answer = core.create_namespaced_service_account_token(name, namespace, request)
        return str(answer.status.token)

    def service_account_kubeconfig(self, name: str, path: Path, namespace: str = SYSTEM_NAMESPACE) -> Path:
        return self.write_kubeconfig(path, self.service_account_token(name, namespace), user=f"{namespace}:{name}")

    # --- objects ---------------------------------------------------------------------------------------------

    def apply_manifests(self) -> None:
        """CRDs, the namespace and RBAC, as ``manifests/`` has them (workloads and webhooks aside: the
        operator runs as a process here, see :func:`register_webhooks`)."""
        api = self.client()
        for path in sorted((MANIFESTS / "crds").glob("*.yaml")):
            self.create_documents(api, path)
        self._wait_crds_established()
        for name in ("00-namespace.yaml", "10-operator-rbac.yaml", "40-agent-rbac.yaml"):
            self.create_documents(api, MANIFESTS / name)

    @staticmethod
    def create_documents(api: kubernetes.client.ApiClient, path: Path) -> None:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        kubernetes.utils.create_from_yaml(api, yaml_objects=documents)

    def _wait_crds_established(self) -> None:
        ext = kubernetes.client.ApiextensionsV1Api(self.client())
        deadline = time.monotonic() + 30
        while True:
            crds = ext.list_custom_resource_definition().items
            if crds and all(
                any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))
                for crd in crds
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("CRDs not Established within 30 s")
            time.sleep(0.1)

    def register_webhooks(self, url: str, ca_bundle: bytes, suffix: str = "") -> list[str]:
        """The webhook configurations of ``manifests/30-webhooks.yaml``, rules unchanged, calling ``url``
        (the operator's HTTPS server; each webhook's path appended) instead of the in-cluster Service.
        Returns the configurations' names, for :func:`unregister_webhooks`."""
        api = self.client()
        admission = kubernetes.client.AdmissionregistrationV1Api(api)
        made = []
        for document in yaml.safe_load_all((MANIFESTS / "30-webhooks.yaml").read_text()):
            if not document:
                continue
            body = copy.deepcopy(document)
            body["metadata"]["name"] += suffix
            for webhook in body["webhooks"]:
                service = webhook["clientConfig"].pop("service")
                webhook["clientConfig"] = {
                    "url": url.rstrip("/") + service["path"],
                    "caBundle": base64.b64encode(ca_bundle).decode(),
                }
            if body["kind"] == "ValidatingWebhookConfiguration":
                admission.create_validating_webhook_configuration(body)
            else:
                admission.create_mutating_webhook_configuration(body)
            made.append(f"{body['kind']}/{body['metadata']['name']}")
        return made

    def unregister_webhooks(self, made: list[str]) -> None:
        admission = kubernetes.client.AdmissionregistrationV1Api(self.client())
        for entry in made:
            kind, _, name = entry.partition("/")
            with contextlib.suppress(kubernetes.client.ApiException):
                if kind == "ValidatingWebhookConfiguration":
                    admission.delete_validating_webhook_configuration(name)
                else:
                    admission.delete_mutating_webhook_configuration(name)


def own_cluster(workdir: Path, with_manifests: bool = True) -> Iterator[RealCluster]:
    """For a module fixture that needs a control plane of its own (a cluster the shared one cannot
    be, said in the module's docstring): skipped without the binaries, failed under CI."""
    try:
        cluster = RealCluster(workdir, with_manifests=with_manifests)
    except Unavailable as e:
        if under_ci():
            pytest.fail(f"real Kubernetes API unavailable under CI: {e}", pytrace=False)
        pytest.skip(str(e))
    with cluster:
        yield cluster


@contextlib.contextmanager
def running_cluster(workdir: Path | None = None) -> Iterator[RealCluster]:
    """A real control plane for the block; its files in ``workdir`` (a fresh temporary folder if None)."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hybridlay-kube-")))
        cluster = stack.enter_context(RealCluster(workdir))
        yield cluster


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, default=str)


@dataclass
class OperatorProcess:
    """``hybridlay-operator`` as a process authenticated as its ServiceAccount, its webhook server on a
    fixed loopback port with a test CA, and (``register``) the webhook configurations pointing at it.

    The port and certificates survive :meth:`kill` and :meth:`start`, so a restarted operator serves
    the webhooks registered for the first. ``settings`` are the operator's environment variables.
    """

    cluster: RealCluster
    workdir: Path
    settings: dict[str, str] = field(default_factory=dict)
    identity: str = field(default_factory=lambda: f"operator-{uuid.uuid4().hex[:6]}")
    serve_webhooks: bool = True
    webhook_port: int = field(default_factory=free_port)
    probe_port: int = field(default_factory=free_port)
    process: Process | None = None
    registered: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ca, self.cert, self.key = write_tls_files(self.workdir)
        self.kubeconfig = self.cluster.service_account_kubeconfig(OPERATOR_SA, self.workdir / "kubeconfig")

    @property
    def webhook_url(self) -> str:
        return f"https://127.0.0.1:{self.webhook_port}"

    def env(self) -> dict[str, str]:
        env = dict(
            os.environ,
            KUBECONFIG=str(self.kubeconfig),
            POD_NAMESPACE=SYSTEM_NAMESPACE,
            POD_NAME=self.identity,
            PROBE_PORT=str(self.probe_port),
            LOG_LEVEL="INFO",
        )
        if self.serve_webhooks:
            env.update(
                WEBHOOK_CERTFILE=str(self.cert),
                WEBHOOK_KEYFILE=str(self.key),
                WEBHOOK_PORT=str(self.webhook_port),
                WEBHOOK_ADDR="127.0.0.1",
            )
        env.update(self.settings)
        return env

    def start(self, timeout: float = 60.0) -> None:
        """Start (again) and wait until ready (state rebuilt from the API, webhook server listening)."""
        self.process = Process(
            f"hybridlay-operator {self.identity}",
            [os.environ.get("PYTHON", sys.executable), "-m", "hybridlay_operator"],
            self.workdir / "operator.log",
            self.env(),
        )
        self.process.start()
        deadline = time.monotonic() + timeout
        while not self.ready():
            self.process.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"operator not ready in {timeout} s; its log ends:\n{self.process.tail()}")
            time.sleep(0.1)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.probe_port}/readyz", timeout=2) as answer:
                if answer.status != 200:
                    return False
        except OSError:
            return False
        return not self.serve_webhooks or _listening(self.webhook_port)

    def register(self) -> None:
        self.registered = self.cluster.register_webhooks(
            self.webhook_url, self.ca.read_bytes(), suffix=f"-{self.identity}"
        )

    def check(self) -> None:
        if self.process is not None:
            self.process.check()

    def kill(self) -> None:
        """kill -9, as a crash or an evicted pod would end it."""
        if self.process is not None and self.process.popen is not None:
            self.process.popen.send_signal(signal.SIGKILL)
            self.process.popen.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        self.process = None

    def close(self) -> None:
        self.stop()
        self.cluster.unregister_webhooks(self.registered)
        self.registered = []

    def log(self) -> str:
        return (self.workdir / "operator.log").read_text(errors="replace")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0
