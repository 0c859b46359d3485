"""Read a running lab back from the kernel: interfaces, addresses and routes per node, plus active faults."""

from __future__ import annotations

import socket
from typing import Any

from lab import state
from lab.net import netns


def inspect_lab(lab: str) -> dict[str, Any]:
    info = state.read_lab_info(lab)
    result: dict[str, Any] = {"name": lab, "file": info.get("file"), "networks": info.get("networks", {}), "nodes": {},
                              "problems": []}
    specs = info["nodes"]
    if info.get("cluster"):
        _inspect_cluster_nodes(lab, info, result)
        specs = {}
    for name, spec in specs.items():
        node: dict[str, Any] = {"kind": spec["kind"], "netns": spec["netns"], "interfaces": {}, "routes": []}
        if netns.exists(spec["netns"]):
            ipr = netns.open_socket(spec["netns"])
            try:
                links = {link["index"]: link for link in ipr.get_links()}
                addrs: dict[int, list[str]] = {}
                for family in (socket.AF_INET, socket.AF_INET6):  # IPv4 first; not IPv6's link-local ones
                    for a in ipr.get_addr(family=family):
                        if not _link_local(a.get_attr("IFA_ADDRESS")):
                            addrs.setdefault(a["index"], []).append(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
                for ifname, iface in spec["interfaces"].items():
                    link = links.get(iface["index"])
                    node["interfaces"][ifname] = {
                        "index": iface["index"],
                        "state": (link.get("state") if link else "missing") or "?",
                        "mac": link.get("address") if link else "",
                        "addresses": addrs.get(iface["index"], []),
                        "network": iface.get("network"),
                        "peer": iface.get("peer"),
                    }
                for r in [*ipr.get_routes(family=socket.AF_INET, table=254),
                          *ipr.get_routes(family=socket.AF_INET6, table=254)]:
                    dst = r.get_attr("RTA_DST")
                    if _kernels_own(dst):
                        continue
                    dst = f"{dst}/{r['dst_len']}" if dst else "default"
                    via = r.get_attr("RTA_GATEWAY")
                    oif = r.get_attr("RTA_OIF")
                    dev = next((n for n, i in spec["interfaces"].items() if i["index"] == oif), str(oif))
                    node["routes"].append(f"{dst}" + (f" via {via}" if via else "") + f" dev {dev}")
            finally:
                ipr.close()
        else:
            node["state"] = "namespace missing"
        result["nodes"][name] = node
    from lab.net.faults import active

    result["faults"] = [{"id": e["id"], "where": e["where"], "what": e["what"]} for e in active(state.Journal(lab))]
    faulted = {f["where"].split(":")[0] for f in result["faults"]}
    result["differences"] = [line for name, node in result["nodes"].items() if name not in faulted
                             for line in differences(name, info["nodes"][name], node)]
    return result


def differences(name: str, spec: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """Where what the kernel holds differs from the topology: an address or a static route gone.

    (A node with an active fault is not compared: a pulled cable takes its routes with it.)
    """
    if found.get("state"):
        return []
    out = []
    for ifname, iface in spec["interfaces"].items():
        held = found["interfaces"].get(ifname, {})
        for key in ("address", "address6"):
            if iface.get(key) and iface[key] not in held.get("addresses", []):
                out.append(f"node {name}: {ifname} does not hold {iface[key]}")
    routes = set(found.get("routes", []))
    for r in spec.get("routes", []):
        want = f"{r['to']}" + (f" via {r['via']}" if r.get("via") else "") + f" dev {r.get('dev')}"
        if want not in routes:
            out.append(f"node {name}: route {want} of the topology is missing")
    return out


def _link_local(address: str | None) -> bool:
    return bool(address) and str(address).lower().startswith("fe80:")


def _kernels_own(dst: str | None) -> bool:
    """The fe80::/64 and multicast routes the kernel puts on every IPv6 interface: not the topology's."""
    return _link_local(dst) or str(dst or "").lower().startswith("ff")


def _inspect_cluster_nodes(lab: str, info: dict[str, Any], result: dict[str, Any]) -> None:
    """A cluster lab's nodes, read back through each machine's engine (``ip -j`` inside each node)."""
    import json
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    from lab.cluster.engines import try_connect_all
    from lab.cluster.model import cluster_from_record
    from lab.nodes import node_from_info

    _, silent = try_connect_all(cluster_from_record(info["cluster"]), timeout=5)
    for machine, why in silent.items():
        result["problems"].append(f"machine {machine}: {why.split(': ', 1)[-1]}")

    def one(name: str) -> tuple[str, dict[str, Any]]:
        spec = info["nodes"][name]
        node: dict[str, Any] = {"kind": spec["kind"], "machine": spec.get("machine"), "interfaces": {}, "routes": []}
        if spec.get("machine") in silent:
            node["state"] = f"machine {spec['machine']} does not answer"
            return name, node
        handle = node_from_info(info, name)
        try:
            addrs = handle.exec(["ip", "-j", "addr", "show"], timeout=20)
            routes = handle.exec(["ip", "-j", "route", "show"], timeout=20)
            routes6 = handle.exec(["ip", "-j", "-6", "route", "show"], timeout=20)
        except subprocess.TimeoutExpired:
            node["state"] = f"machine {spec.get('machine')} does not answer"
            return name, node
        if addrs.returncode != 0:
            why = (addrs.stderr.strip().splitlines() or ["no answer"])[-1]
            node["state"] = f"not reachable on machine {spec.get('machine')}: {why[:200]}"
            return name, node
        links = {link["ifname"]: link for link in json.loads(addrs.stdout or "[]")}
        for ifname, iface in spec["interfaces"].items():
            link = links.get(ifname)
            node["interfaces"][ifname] = {
                "state": ("up" if "UP" in link.get("flags", []) else "down") if link else "missing",  # as pyroute2's
                "mac": link.get("address", "") if link else "",
                "addresses": [f"{a['local']}/{a['prefixlen']}" for family in ("inet", "inet6")
                              for a in (link or {}).get("addr_info", [])
                              if a.get("family") == family and not _link_local(a.get("local"))],
                "network": iface.get("network"), "peer": iface.get("peer"),
            }
        found = json.loads(routes.stdout or "[]") + json.loads(routes6.stdout or "[]")
        for r in found:
            if _kernels_own(r.get("dst")):
                continue
            node["routes"].append(r.get("dst", "?") + (f" via {r['gateway']}" if r.get("gateway") else "")
                                  + f" dev {r.get('dev', '?')}")
        return name, node

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(info["nodes"])))) as pool:
        for name, node in pool.map(one, sorted(info["nodes"])):
            result["nodes"][name] = node
            if node.get("state"):
                result["problems"].append(f"node {name}: {node['state']}")
    result["cluster"] = info["cluster"]["file"]
