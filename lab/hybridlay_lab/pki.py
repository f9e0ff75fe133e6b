"""The lab cluster's certificates and kubeconfigs, made on the controller before any container.

One lab CA signs everything (EC P-256):

- the API server's serving certificate (the control plane's node-network address, loopback, the
  ``kubernetes`` Service's ClusterIP and DNS names) and its client certificate for kubelets
  (logs, exec);
- a client certificate per identity: the admin (``system:masters``), the controller manager, the
  scheduler, each node's kubelet (``system:node:<node>`` in ``system:nodes``), and for the
  ``systemd`` install mode the operator's and the agent's ServiceAccount names (RBAC matches a
  ServiceAccount subject by that user name, so the certificate gets exactly the manifests' rights);
- each kubelet's serving certificate (its node name and address);
- the ServiceAccount token signing key pair.

Files go to ``<state>/hosts/<host>/`` (bind-mounted read-only at ``/etc/kubernetes`` in that
container: each host sees only its own), the admin kubeconfig to ``<state>/kubeconfig`` (the API
through the port published on this machine's loopback). What exists and still fits is kept (a
second run changes nothing); the CA's key never leaves ``<state>/pki``.

``python -m hybridlay_lab.pki --state DIR ...`` prints ``changed`` or ``unchanged``.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
CLUSTER = "hybridlay-lab"
SERVICE_ACCOUNTS = {
    "operator": "system:serviceaccount:hybridlay-system:hybridlay-operator",
    "agent": "system:serviceaccount:hybridlay-system:hybridlay-agent",
}


@dataclass
class Writer:
    """Writes files only when their content differs; remembers whether it wrote any."""

    changed: bool = False

    def write(self, path: Path, data: bytes, mode: int = 0o644) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.exists() and path.read_bytes() == data and path.stat().st_mode & 0o777 == mode:
            return
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(data)
        partial.chmod(mode)
        partial.replace(path)
        self.changed = True


def _pem_key(key: Any) -> bytes:
    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass
class CA:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def load_or_make(cls, folder: Path, writer: Writer) -> CA:
        cert_path, key_path = folder / "ca.crt", folder / "ca.key"
        if cert_path.exists() and key_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_path}: not an EC key")
            return cls(x509.load_pem_x509_certificate(cert_path.read_bytes()), key)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        name = _name("hybridlay-lab-ca")
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + 10 * VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        writer.write(key_path, _pem_key(key), 0o600)
        writer.write(cert_path, _pem_cert(cert))
        return cls(cert, key)

    @property
    def pem(self) -> bytes:
        return _pem_cert(self.cert)


@dataclass(frozen=True)
class Leaf:
    """A certificate to have: its subject, usage and alternative names."""

    common_name: str
    organizations: tuple[str, ...] = ()
    server: bool = False
    client: bool = False
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()

    def fits(self, cert: x509.Certificate, ca: CA) -> bool:
        """Still what is wanted: same subject, same names, signed by this CA, not about to expire."""
        if cert.issuer != ca.cert.subject or cert.subject != _name(self.common_name, self.organizations):
            return False
        if cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) < datetime.timedelta(days=30):
            return False
        try:
            ca.key.public_key().verify(
                cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm or hashes.SHA256())
            )
        except Exception:  # any verification failure means: make it again
            return False
        try:
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return not (self.dns or self.ips)
        have = {*names.get_values_for_type(x509.DNSName), *map(str, names.get_values_for_type(x509.IPAddress))}
        return have == {*self.dns, *self.ips}

    def issue(self, ca: CA) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usages = [
            u
            for u, on in (
                (ExtendedKeyUsageOID.SERVER_AUTH, self.server),
                (ExtendedKeyUsageOID.CLIENT_AUTH, self.client),
            )
            if on
        ]
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(self.common_name, self.organizations))
            .issuer_name(ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if self.dns or self.ips:
            alternative: list[x509.GeneralName] = [x509.DNSName(d) for d in self.dns]
            alternative += [x509.IPAddress(ipaddress.ip_address(i)) for i in self.ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        return builder.sign(ca.key, hashes.SHA256()), key


def ensure_leaf(folder: Path, stem: str, leaf: Leaf, ca: CA, writer: Writer) -> tuple[bytes, bytes]:
    """``<stem>.crt`` and ``<stem>.key`` in ``folder``: kept if they fit, else made anew. Their PEM."""
    cert_path, key_path = folder / f"{stem}.crt", folder / f"{stem}.key"
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if leaf.fits(cert, ca):
            return cert_path.read_bytes(), key_path.read_bytes()
    cert, key = leaf.issue(ca)
    writer.write(key_path, _pem_key(key), 0o600)
    writer.write(cert_path, _pem_cert(cert))
    return _pem_cert(cert), _pem_key(key)


def kubeconfig(server: str, ca_pem: bytes, user: str, cert_pem: bytes, key_pem: bytes) -> bytes:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER, "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}}],
        "contexts": [{"name": CLUSTER, "context": {"cluster": CLUSTER, "user": user}}],
        "current-context": CLUSTER,
    }
    return yaml.safe_dump(config, sort_keys=False).encode()


@dataclass
class Plan:
    state: Path
    control_plane: str
    api_address: str
    api_port: int
    published_port: int
    service_ip: str
    nodes: dict[str, str] = field(default_factory=dict)  # name → node-network address


def make(plan: Plan) -> bool:
    """Every file of the plan; True if any was written."""
    writer = Writer()
    ca = CA.load_or_make(plan.state / "pki", writer)
    inside = f"https://{plan.api_address}:{plan.api_port}"

    cp = plan.state / "hosts" / plan.control_plane
    writer.write(cp / "ca.crt", ca.pem)
    ensure_leaf(
        cp,
        "apiserver",
        Leaf(
            "kube-apiserver",
            server=True,
            dns=(
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                plan.control_plane,
                "localhost",
            ),
            ips=tuple(dict.fromkeys((plan.api_address, "127.0.0.1", plan.service_ip))),
        ),
        ca,
        writer,
    )
    ensure_leaf(
        cp,
        "apiserver-kubelet-client",
        Leaf("kube-apiserver-kubelet-client", ("system:masters",), client=True),
        ca,
        writer,
    )
    sa_key = cp / "sa.key"
    if not sa_key.exists():
        signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        writer.write(sa_key, _pem_key(signing), 0o600)
        public = signing.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        writer.write(cp / "sa.pub", public)
    local = f"https://127.0.0.1:{plan.api_port}"
    for stem, user, groups in (
        ("controller-manager", "system:kube-controller-manager", ()),
        ("scheduler", "system:kube-scheduler", ()),
        ("admin", "hybridlay-lab-admin", ("system:masters",)),
    ):
        cert, key = ensure_leaf(plan.state / "pki" / "clients", stem, Leaf(user, groups, client=True), ca, writer)
        writer.write(cp / f"{stem}.kubeconfig", kubeconfig(local, ca.pem, user, cert, key), 0o600)
        if stem == "admin":
            published = f"https://127.0.0.1:{plan.published_port}"
            writer.write(plan.state / "kubeconfig", kubeconfig(published, ca.pem, user, cert, key), 0o600)

    for node, address in plan.nodes.items():
        folder = plan.state / "hosts" / node
        writer.write(folder / "ca.crt", ca.pem)
        ensure_leaf(folder, "kubelet", Leaf(node, server=True, dns=(node,), ips=(address,)), ca, writer)
        user = f"system:node:{node}"
        cert, key = ensure_leaf(
            plan.state / "pki" / "clients", f"kubelet-{node}", Leaf(user, ("system:nodes",), client=True), ca, writer
        )
        writer.write(folder / "kubelet.kubeconfig", kubeconfig(inside, ca.pem, user, cert, key), 0o600)

    # install_mode systemd: the operator's and the agents' identities for site.yml's host services.
    for stem, user in SERVICE_ACCOUNTS.items():
        cert, key = ensure_leaf(plan.state / "pki" / "clients", stem, Leaf(user, client=True), ca, writer)
        writer.write(plan.state / "services" / f"{stem}.kubeconfig", kubeconfig(inside, ca.pem, user, cert, key), 0o600)
    return writer.changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybridlay_lab.pki", description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True, help="the lab's folder on this machine")
    parser.add_argument("--control-plane", required=True, help="the control plane's host name")
    parser.add_argument("--api-address", required=True, help="the API server's node-network address")
    parser.add_argument("--api-port", type=int, default=6443)
    parser.add_argument("--published-port", type=int, required=True, help="the API's port on this machine's loopback")
    parser.add_argument("--service-ip", default="10.96.0.1", help="the kubernetes Service's ClusterIP")
    parser.add_argument("--node", action="append", default=[], help="NAME=ADDRESS of a node with a kubelet")
    args = parser.parse_args(argv)
    nodes = dict(n.split("=", 1) for n in args.node)
    plan = Plan(
        args.state, args.control_plane, args.api_address, args.api_port, args.published_port, args.service_ip, nodes
    )
    print("changed" if make(plan) else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
