"""hybridlay_lab.kubebins: the binaries' setting, unpacking and checks, and the official release's
download path (here through file:// URLs: these machines reach no release server)."""

from __future__ import annotations

import hashlib
import lzma
from pathlib import Path

import pytest

from hybridlay_lab import kubebins


def fake_binary(text: str) -> bytes:
    return f"#!/bin/sh\necho {text}\n".encode()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "hybridlay" / "kubernetes"


def packed_folder(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    sums, contents = [], {}
    for name in names:
        data = fake_binary(name)
        contents[name] = data
        packed = lzma.compress(data)
        (folder / f"{name}.xz").write_bytes(packed)
        sums += [f"{hashlib.sha256(data).hexdigest()}  {name}", f"{hashlib.sha256(packed).hexdigest()}  {name}.xz"]
    (folder / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    return contents


def test_xz_folder_is_unpacked_once_into_the_cache_and_checked(tmp_path, cache, monkeypatch):
    source = tmp_path / "shared"
    contents = packed_folder(source, ("kubelet", "kube-apiserver"))
    monkeypatch.setenv(kubebins.BINARIES_SETTING, str(source))
    target = kubebins.kube_binaries(("kubelet", "kube-apiserver"))
    assert target.parent == cache
    assert (target / "kubelet").read_bytes() == contents["kubelet"]
    assert (target / "kubelet").stat().st_mode & 0o111
    assert kubebins.kube_binaries(("kubelet", "kube-apiserver")) == target  # unpacked once, same place
    (target / "kubelet").write_bytes(b"tampered")
    with pytest.raises(kubebins.Unavailable, match="sha256 does not match"):
        kubebins.kube_binaries(("kubelet",))


def test_missing_folder_names_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv(kubebins.BINARIES_SETTING, str(tmp_path / "nowhere"))
    with pytest.raises(kubebins.Unavailable, match=kubebins.BINARIES_SETTING):
        kubebins.kube_binaries()


@pytest.fixture
def release(tmp_path, monkeypatch) -> Path:
    """A release server's layout on disk, reached through file:// URLs."""
    root = tmp_path / "release"
    for name in kubebins.SERVER_BINARIES:
        folder = root / kubebins.RELEASE / "bin" / "linux" / kubebins.machine_arch()
        folder.mkdir(parents=True, exist_ok=True)
        data = fake_binary(name)
        (folder / name).write_bytes(data)
        (folder / f"{name}.sha256").write_text(hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(kubebins, "RELEASE_URL", f"file://{root}/{{version}}/bin/linux/{{arch}}/{{name}}")
    return root


def test_release_is_downloaded_checked_and_kept(release, cache, tmp_path, monkeypatch):
    monkeypatch.setenv(kubebins.BINARIES_SETTING, str(tmp_path / "no-shared-folder"))
    target = kubebins.lab_binaries(download=True)
    assert target == cache / f"release-{kubebins.RELEASE}-{kubebins.machine_arch()}"
    for name in kubebins.SERVER_BINARIES:
        assert (target / name).read_bytes() == fake_binary(name)
        assert (target / name).stat().st_mode & 0o111
    assert len((target / "SHA256SUMS").read_text().splitlines()) == len(kubebins.SERVER_BINARIES)
    # A second call fetches nothing: the release server may be gone.
    monkeypatch.setattr(kubebins, "RELEASE_URL", "file:///nonexistent/{version}/{arch}/{name}")
    assert kubebins.lab_binaries(download=True) == target


def test_release_binary_not_matching_its_published_sha256_is_refused(release, cache, tmp_path, monkeypatch):
    folder = release / kubebins.RELEASE / "bin" / "linux" / kubebins.machine_arch()
    (folder / "kubelet").write_bytes(b"not what was published")
    with pytest.raises(kubebins.Unavailable, match="is not the published"):
        kubebins.download_release(target=tmp_path / "out")
    assert not (tmp_path / "out" / "kubelet").exists()


def test_unreachable_release_is_a_clear_error(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(kubebins, "RELEASE_URL", "file:///nonexistent/{version}/{arch}/{name}")
    monkeypatch.setenv(kubebins.BINARIES_SETTING, str(tmp_path / "no-shared-folder"))
    with pytest.raises(kubebins.Unavailable, match=f"cannot download .*{kubebins.BINARIES_SETTING}"):
        kubebins.lab_binaries(download=True)


def test_without_download_a_missing_folder_stays_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(kubebins.BINARIES_SETTING, str(tmp_path / "no-shared-folder"))
    with pytest.raises(kubebins.Unavailable):
        kubebins.lab_binaries(download=False)
    assert kubebins.main([]) == 1


def test_published_sha256_accepts_a_digest_with_a_name_and_refuses_garbage():
    digest = "a" * 64
    assert kubebins.published_sha256(f"{digest}  kubelet\n", "u") == digest
    with pytest.raises(kubebins.Unavailable, match="not a sha256"):
        kubebins.published_sha256("<html>not found</html>", "u")
