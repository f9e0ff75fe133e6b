"""hybridlay_lab.images: the pods' images as OCI archives, written offline, byte-for-byte stable."""

from __future__ import annotations

import io
import json
import tarfile

from hybridlay_lab import images


def test_archives_are_stable_and_describe_their_image(tmp_path):
    first = images.write_lab_images(tmp_path)
    before = {name: path.read_bytes() for name, path in first.items()}
    images.write_lab_images(tmp_path)
    assert {name: path.read_bytes() for name, path in first.items()} == before  # a second import changes nothing
    described = images.describe(first[images.WORKLOAD_IMAGE])
    assert described["name"] == images.WORKLOAD_IMAGE
    with tarfile.open(first[images.WORKLOAD_IMAGE]) as tar:
        index = json.load(tar.extractfile("index.json"))
        assert index["manifests"][0]["digest"] == described["digest"]
        manifest = json.load(tar.extractfile("blobs/sha256/" + described["digest"].split(":")[1]))
        config = json.load(tar.extractfile("blobs/sha256/" + manifest["config"]["digest"].split(":")[1]))
    assert config["config"]["Cmd"] == ["sleep", "infinity"]


def test_workload_image_has_the_matrix_tools(tmp_path):
    archive = images.write_lab_images(tmp_path)[images.WORKLOAD_IMAGE]
    with tarfile.open(archive) as tar:
        manifest_digest = images.describe(archive)["digest"].split(":")[1]
        manifest = json.load(tar.extractfile(f"blobs/sha256/{manifest_digest}"))
        layer = tar.extractfile("blobs/sha256/" + manifest["layers"][0]["digest"].split(":")[1]).read()
    with tarfile.open(fileobj=io.BytesIO(layer)) as files:
        names = set(files.getnames())
    assert {"bin/busybox", "bin/sh", "bin/ping", "bin/nc", "bin/sed", "bin/sleep"} <= names


def test_main_lists_given_archives_too_by_the_name_the_nodes_give_them(tmp_path, capsys):
    archive = images.write_lab_images(tmp_path / "a")[images.PAUSE_IMAGE]
    assert images.main([str(tmp_path / "b"), str(archive), f"{archive}=localhost/hybridlay:0.1.0"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [entry["name"] for entry in listed] == [
        images.PAUSE_IMAGE, images.WORKLOAD_IMAGE, images.PAUSE_IMAGE, "localhost/hybridlay:0.1.0",
    ]  # fmt: skip
    assert listed[2]["digest"] == listed[3]["digest"]
