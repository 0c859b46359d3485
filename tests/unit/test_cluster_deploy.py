"""The pure parts of a cluster deploy: service names, pin constraints, the journal's record of the cluster."""

from __future__ import annotations

from pathlib import Path

from lab.cluster.deploy import least_held, pin_constraint, service_name
from lab.cluster.model import cluster_from_record, cluster_record, load_cluster


def test_a_pin_uses_the_label_that_names_the_machine_else_its_hostname() -> None:
    labelled = {"Spec": {"Labels": {"lab.machine": "m2"}}, "Description": {"Hostname": "rack4-b"}}
    assert pin_constraint("m2", labelled) == "node.labels.lab.machine==m2"
    by_hostname = {"Spec": {"Labels": {}}, "Description": {"Hostname": "m3"}}
    assert pin_constraint("m3", by_hostname) == "node.hostname==m3"


def test_a_spread_round_goes_to_the_machines_holding_fewest_of_the_lab() -> None:
    assert least_held({"m1": 0, "m2": 0, "m3": 0}) == ["m1", "m2", "m3"]
    assert least_held({"m1": 2, "m2": 1, "m3": 1}) == ["m2", "m3"]
    assert least_held({"m3": 0, "m1": 1}) == ["m3"]  # a node pinned to m1 counts: the next goes elsewhere


def test_service_names_are_dns_components() -> None:
    assert service_name("book-web", "kongming20") == "lab-book-web-kongming20"
    mixed = service_name("book-web", "Kongming20")
    assert mixed != service_name("book-web", "kongming20") and mixed == mixed.lower() and "." not in mixed
    long = service_name("a" * 20, "n" * 63)
    assert len(long) <= 63 and long != service_name("a" * 20, "n" * 62 + "m")


def test_the_journal_keeps_the_cluster_whole(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    path = tmp_path / "cluster.yaml"
    path.write_text("machines:\n  m1: {engine: unix:///run/d.sock}\n"
                    "  m2: {engine: tcp://10.9.0.2:2376, tls: {ca: ca.pem, cert: cert.pem, key: key.pem}}\n")
    cluster = load_cluster(path)
    again = cluster_from_record(cluster_record(cluster))
    assert again.machines == cluster.machines
    assert again.tls_paths("m2") == (str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    assert again.tls_paths("m1") is None
