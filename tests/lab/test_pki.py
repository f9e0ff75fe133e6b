"""hybridlay_lab.pki: the lab CA, its certificates and the kubeconfigs, kept when they still fit."""

from __future__ import annotations

import base64
import datetime
import ipaddress

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hybridlay_lab import pki


def plan(tmp_path, published=16443):
    return pki.Plan(tmp_path, "control-plane", "10.10.1.10", 6443, published, "10.96.0.1",
                    {"node1": "10.10.1.11", "node2": "10.10.1.12"})  # fmt: skip


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_everything_made_once_then_kept(tmp_path):
    assert pki.make(plan(tmp_path)) is True
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert pki.make(plan(tmp_path)) is False
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files
    # Private keys only for root.
    assert all(p.stat().st_mode & 0o077 == 0 for p in files if p.suffix == ".key" or p.name.endswith("kubeconfig"))


def test_apiserver_certificate_names_every_way_to_it(tmp_path):
    pki.make(plan(tmp_path))
    cert = load(tmp_path / "hosts/control-plane/apiserver.crt")
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"10.10.1.10", "127.0.0.1", "10.96.0.1"}
    assert "kubernetes.default.svc" in names.get_values_for_type(x509.DNSName)
    ca = load(tmp_path / "pki/ca.crt")
    ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))


def test_each_host_gets_only_its_own_files(tmp_path):
    pki.make(plan(tmp_path))
    assert sorted(p.name for p in (tmp_path / "hosts/node1").iterdir()) == [
        "ca.crt", "kubelet.crt", "kubelet.key", "kubelet.kubeconfig",
    ]  # fmt: skip
    assert not list((tmp_path / "hosts").rglob("ca.key"))
    kubeconfig = yaml.safe_load((tmp_path / "hosts/node1/kubelet.kubeconfig").read_text())
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://10.10.1.10:6443"
    client = x509.load_pem_x509_certificate(base64.b64decode(kubeconfig["users"][0]["user"]["client-certificate-data"]))
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:node1"
    assert client.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
    serving = load(tmp_path / "hosts/node1/kubelet.crt")
    ips = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ips.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.10.1.11")]


def test_admin_kubeconfig_follows_the_published_port(tmp_path):
    pki.make(plan(tmp_path))
    assert pki.make(plan(tmp_path, published=17443)) is True
    admin = yaml.safe_load((tmp_path / "kubeconfig").read_text())
    assert admin["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:17443"


def test_service_account_identities_for_the_systemd_mode(tmp_path):
    pki.make(plan(tmp_path))
    for stem, user in pki.SERVICE_ACCOUNTS.items():
        kubeconfig = yaml.safe_load((tmp_path / "services" / f"{stem}.kubeconfig").read_text())
        data = base64.b64decode(kubeconfig["users"][0]["user"]["client-certificate-data"])
        assert x509.load_pem_x509_certificate(data).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == user


def test_a_certificate_signed_by_another_ca_is_made_again(tmp_path):
    pki.make(plan(tmp_path))
    before = (tmp_path / "hosts/node1/kubelet.crt").read_bytes()
    (tmp_path / "pki/ca.crt").unlink()
    (tmp_path / "pki/ca.key").unlink()
    assert pki.make(plan(tmp_path)) is True
    after = load(tmp_path / "hosts/node1/kubelet.crt")
    assert (tmp_path / "hosts/node1/kubelet.crt").read_bytes() != before
    assert after.not_valid_after_utc > datetime.datetime.now(datetime.UTC)
