"""Container nodes for real: the book's ch.4 web case with squid, dnsmasq and nginx in Docker containers.

One book-web lab (renamed so it cannot clash with anyone's) serves most tests;
the last test takes it down and checks that nothing of it is left: no
container, namespace, veth, /etc/netns entry or image-build leftover.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from lab import deploy, dockerbuild, images, state
from lab.cli import main
from lab.dockerclient import docker_client
from lab.errors import EnvironmentProblem
from lab.nodes import node_from_info
from lab.nodes.container import LABEL_LAB
from lab.topology import load_topology, load_topology_text

pytestmark = [pytest.mark.root, pytest.mark.docker]
ROOT = Path(__file__).resolve().parents[2]
BOOK_WEB = ROOT / "topologies" / "book-web.yaml"
INDEX = (ROOT / "topologies" / "book-web" / "index.html").read_bytes()
LAB = "ctr-bookweb"
URL = "http://www.baidu.com/index.html"


def lab_containers(lab: str) -> list[str]:
    return [c.name for c in docker_client().containers.list(all=True, filters={"label": f"{LABEL_LAB}={lab}"})]


def lab_namespaces(lab: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"lab-{lab}.")]


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


class Lab:
    def __init__(self, name: str) -> None:
        self.name = name
        self.info = state.read_lab_info(name)

    def exec(self, node: str, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return node_from_info(self.info, node).exec(argv, timeout=timeout)


@pytest.fixture(scope="module")
def links_before() -> set[str]:
    return root_links()


@pytest.fixture(scope="module")
def lab(links_before: set[str]):
    deploy.down(LAB)  # a previous run that was killed
    topo, _ = load_topology(BOOK_WEB)
    topo.name = LAB
    start = time.monotonic()
    deploy.up(topo, BOOK_WEB.read_text(), str(BOOK_WEB))
    print(f"lab up {BOOK_WEB.name}: {time.monotonic() - start:.1f} s")
    try:
        yield Lab(LAB)
    finally:
        deploy.down(LAB)


def fetch(lab: Lab) -> subprocess.CompletedProcess[str]:
    """The book's request: kongming20 uses the proxy its http_proxy names (ernest-laptop:3128)."""
    return lab.exec("kongming20", ["wget", "-S", "-O-", "--header", "Connection: close", URL])


def header(stderr: str, name: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(rf"^\s*{name}: (.*)$", stderr, re.MULTILINE)]


def test_fetch_through_squid(lab):
    r = fetch(lab)
    assert r.returncode == 0, r.stderr
    assert "Connecting to ernest-laptop (ernest-laptop)|192.168.1.108|:3128" in r.stderr
    assert re.search(r"^\s*HTTP/1\.1 200 OK$", r.stderr, re.MULTILINE), r.stderr
    assert r.stdout.encode() == INDEX
    assert header(r.stderr, "Content-Length") == [str(len(INDEX))]
    via = header(r.stderr, "Via")
    assert len(via) == 1 and re.fullmatch(r"1\.[01] ernest-laptop \(squid/[\d.]+\)", via[0]), via
    assert header(r.stderr, "X-Cache") == ["MISS from ernest-laptop"]
    log = lab.exec("ernest-laptop", ["cat", "/var/log/squid/access.log"]).stdout
    hits = [line for line in log.splitlines() if f"GET {URL}" in line]
    assert hits, log
    assert re.search(r" 192\.168\.1\.109 TCP_MISS/200 \d+ GET http://www\.baidu\.com/index\.html "
                     r"- HIER_DIRECT/10\.0\.2\.[12] ", hits[-1]), hits[-1]


def test_a_second_fetch_is_a_miss_again(lab):
    """``cache deny all``: every run shows the DNS query and the proxy's connection to the server."""
    r = fetch(lab)
    assert r.returncode == 0, r.stderr
    assert header(r.stderr, "X-Cache") == ["MISS from ernest-laptop"]
    log = lab.exec("ernest-laptop", ["cat", "/var/log/squid/access.log"]).stdout
    assert sum(" TCP_MISS/200 " in line for line in log.splitlines()) >= 2
    assert "HIT" not in log


def test_the_proxy_refuses_clients_beyond_its_lan(lab):
    """squid's ``acl localnet`` comes from the LAN subnet: the DNS server (10.0.2.53) is not allowed."""
    r = lab.exec("dns", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-x", "http://192.168.1.108:3128",
                         URL])
    assert r.stdout == "403", (r.stdout, r.stderr)


def test_dns_answers_cname_and_two_a_records(lab):
    r = lab.exec("ernest-laptop", ["host", "-t", "A", "www.baidu.com"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "www.baidu.com is an alias for www.a.shifen.com."
    assert sorted(lines[1:]) == ["www.a.shifen.com has address 10.0.2.1", "www.a.shifen.com has address 10.0.2.2"]
    log = lab.exec("dns", ["cat", "/var/log/lab/dnsmasq.log"]).stdout
    assert re.search(r"query\[A\] www\.baidu\.com from 192\.168\.1\.108$", log, re.MULTILINE), log


def test_dns_refuses_names_it_does_not_serve(lab):
    """No upstream: a name outside the topology's records gets no address (and no query leaves the lab)."""
    r = lab.exec("ernest-laptop", ["host", "-W", "2", "-t", "A", "example.com"])
    assert r.returncode != 0
    assert "has address" not in r.stdout


def test_the_client_resolves_the_proxy_from_etc_hosts(lab):
    r = lab.exec("kongming20", ["getent", "hosts", "ernest-laptop"])
    assert r.stdout.split() == ["192.168.1.108", "ernest-laptop"]
    resolv = lab.exec("kongming20", ["cat", "/etc/resolv.conf"]).stdout
    assert "nameserver" not in resolv, "the client must not have the machine's resolver"
    assert lab.exec("ernest-laptop", ["cat", "/etc/resolv.conf"]).stdout.splitlines()[-1] == "nameserver 10.0.2.53"
    assert lab.exec("kongming20", ["printenv", "http_proxy"]).stdout.strip() == "http://ernest-laptop:3128"


def test_arp_and_route_from_the_client_to_the_router(lab):
    r = lab.exec("kongming20", ["ip", "route", "get", "10.0.2.53"])
    assert r.stdout.startswith("10.0.2.53 via 192.168.1.1 dev eth0 src 192.168.1.109"), r.stdout
    router_mac = lab.exec("router", ["cat", "/sys/class/net/eth0/address"]).stdout.strip()
    assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", router_mac)
    assert lab.exec("kongming20", ["ip", "neigh", "flush", "all"]).returncode == 0
    ping = lab.exec("kongming20", ["ping", "-c1", "-W2", "10.0.2.53"])
    assert ping.returncode == 0, ping.stdout + ping.stderr
    neigh = lab.exec("kongming20", ["ip", "neigh", "show", "192.168.1.1"]).stdout
    assert f"lladdr {router_mac}" in neigh, neigh
    # The router forwards (ip_forward=1 from the topology); the others do not.
    assert lab.exec("router", ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip() == "1"
    assert lab.exec("kongming20", ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip() == "0"


def test_containers_are_sealed_and_unprivileged(lab, links_before):
    client = docker_client()
    assert root_links() == links_before, "a lab must not add interfaces to the machine's namespace"
    for node in ("kongming20", "ernest-laptop", "router", "dns", "web1", "web2"):
        c = client.containers.get(f"lab-{LAB}.{node}")
        host = c.attrs["HostConfig"]
        assert host["NetworkMode"] == "none" and host["Privileged"] is False
        assert set(host["CapAdd"]) == {"NET_ADMIN", "NET_RAW"}
        assert c.labels == {**c.labels, "lab.name": LAB, "lab.node": node}
        links = lab.exec(node, ["ip", "-o", "link"]).stdout
        ifnames = sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines())
        assert ifnames == (["eth0", "eth1", "lo"] if node == "router" else ["eth0", "lo"]), links
        for route in lab.exec(node, ["ip", "-4", "route"]).stdout.splitlines():
            assert route.startswith(("default via 192.168.1.1 ", "default via 10.0.2.254 ", "192.168.1.0/24 ",
                                     "10.0.2.0/24 ")), (node, route)


def test_lab_exec_through_the_cli(lab, capfd):
    code = main(["exec", "--lab", LAB, "kongming20", "--", "wget", "-q", "-O-", "--header", "Connection: close", URL])
    assert code == 0
    assert capfd.readouterr().out.encode() == INDEX
    assert main(["exec", "--lab", LAB, "kongming20", "--", "python3", "-c", "import lab.servers; print('ok')"]) == 0
    assert capfd.readouterr().out == "ok\n"


def test_a_command_that_times_out_is_killed_inside_the_container(lab):
    """docker exec forwards no signal: killing the client alone would leave the program running."""
    marker = f"lab-timeout-{time.monotonic_ns()}"
    with pytest.raises(subprocess.TimeoutExpired):
        lab.exec("kongming20", ["python3", "-c", "import time; time.sleep(60)", marker], timeout=1.5)
    listing = ["sh", "-c", 'for f in /proc/[0-9]*/cmdline; do tr "\\0" " " < "$f"; echo; done']
    for _ in range(20):
        running = [line for line in lab.exec("kongming20", listing).stdout.splitlines() if marker in line]
        if not running:
            break
        time.sleep(0.1)
    assert running == []


def test_images_build_again_builds_nothing(lab, capsys):
    # the lab's images are built; one build of every image (the agent's too, which no lab here needs) first
    assert main(["images", "build", "-q"]) == 0
    capsys.readouterr()
    start = time.monotonic()
    assert main(["images", "build", "-q"]) == 0
    elapsed = time.monotonic() - start
    out = capsys.readouterr().out
    for name in ("base", "host", "router", "dns", "proxy", "web"):
        assert re.search(rf"\b{name}\b.*lab-{name}:[0-9a-f]{{16}}.*cached", out), out
    assert "built in" not in out
    assert elapsed < 15, f"a cached build took {elapsed:.1f} s"


def test_a_changed_dockerfile_rebuilds_only_that_image(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "lab" / "recipes", tmp_path / "images")
    client = docker_client()
    current = images.ImageSet(client)
    current.ensure(["router", "dns"])  # their tags hang on the base's: make sure it exists (run alone, fresh)
    dockerfile = tmp_path / "images" / "router" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + 'LABEL lab.test="changed router"\n')
    changed = images.ImageSet(client, tmp_path / "images")
    assert changed.tag("dns", build=False) == current.tag("dns", build=False)
    new_tag = changed.tag("router", build=False)
    assert new_tag and new_tag != current.tag("router", build=False)
    try:
        monkeypatch.setenv("LAB_IMAGES_DIR", str(tmp_path / "images"))
        results = {b.name: b for b in changed.ensure(["router"])}
        assert results["router"].built and results["router"].tag == new_tag
        assert not results["base"].built
        assert client.images.get(new_tag).labels["lab.test"] == "changed router"
    finally:
        for ref in (new_tag,):
            try:
                client.images.remove(ref)
            except Exception:  # noqa: BLE001 - absent already is fine
                pass


def test_a_daemon_that_never_listens_times_out_naming_the_node_and_saving_its_log(lab):
    from lab import services
    from lab.plan import make_plan

    topo, _ = load_topology(BOOK_WEB)
    topo.name = LAB
    plan = make_plan(topo)
    daemon = services.Daemon("web1", "nginx", {}, [], services.Readiness("tcp", "10.0.2.1", 8081),
                             logs=["/var/log/nginx/error.log"])
    container = docker_client().containers.get(f"lab-{LAB}.web1")
    start = time.monotonic()
    with pytest.raises(EnvironmentProblem) as info:
        services.wait_ready(plan, daemon, container, timeout=1.0)
    assert 1.0 <= time.monotonic() - start < 5
    assert info.value.message.startswith("node web1: nginx did not listen on 10.0.2.1:8081 within 1 s")
    saved = Path(info.value.hint.removeprefix("its logs are in "))  # type: ignore[union-attr]
    try:
        text = saved.read_text()
        assert "## /var/log/nginx/error.log" in text and "start worker process" in text
    finally:
        saved.unlink()
    # The real port is found at once.
    services.wait_ready(plan, services.Daemon("web1", "nginx", {}, [], services.Readiness("tcp", "10.0.2.1", 80)),
                        container, timeout=1.0)


FAILING = """
name: ctr-fail
networks:
  net: {subnet: 10.77.0.0/24}
nodes:
  notdns:
    kind: container
    image: host
    interfaces:
      eth0: {network: net, address: 10.77.0.53/24}
    dns:
      records: [{name: a.example, value: 10.77.0.1}]
"""


def test_a_daemon_that_cannot_start_fails_up_naming_the_node_and_its_log():
    topo, _ = load_topology_text(FAILING)
    deploy.down(topo.name)
    with pytest.raises(EnvironmentProblem) as info:
        deploy.up(topo, FAILING)
    assert "node notdns" in info.value.message and "dnsmasq" in info.value.message
    assert "image: dns" in (info.value.hint or "")
    assert lab_containers("ctr-fail") == [] and lab_namespaces("ctr-fail") == []
    assert not state.lab_dir("ctr-fail").exists()


def test_down_leaves_nothing_behind(lab, links_before):
    assert len(lab_containers(LAB)) == 6 and len(lab_namespaces(LAB)) == 7
    deploy.down(LAB)
    assert lab_containers(LAB) == []
    assert lab_namespaces(LAB) == []
    assert root_links() == links_before
    assert not any(p.name.startswith(f"lab-{LAB}.") for p in Path("/etc/netns").glob("*"))
    assert not state.lab_dir(LAB).exists()
    # No image-build leftovers: no build container, no temporary root file system, no dangling lab image.
    client = docker_client()
    lab_image_ids = {img.id for img in client.images.list(filters={"label": dockerbuild.LABEL_IMAGE})}
    for c in client.containers.list(all=True):
        assert not (c.image.id in lab_image_ids and LABEL_LAB not in c.labels), f"leftover container {c.name}"
    assert client.images.list(filters={"label": dockerbuild.LABEL_IMAGE, "dangling": True}) == []
    assert list(Path("/var/tmp").glob("lab-rootfs-*")) == []
    assert deploy.down(LAB).removed == []  # idempotent
