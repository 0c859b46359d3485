"""Read a running lab back from the kernel: interfaces, addresses and routes per node, plus active faults."""

from __future__ import annotations

from typing import Any

from lab import state
from lab.net import netns


def inspect_lab(lab: str) -> dict[str, Any]:
    info = state.read_lab_info(lab)
    result: dict[str, Any] = {"name": lab, "file": info.get("file"), "networks": info.get("networks", {}), "nodes": {}}
    for name, spec in info["nodes"].items():
        node: dict[str, Any] = {"kind": spec["kind"], "netns": spec["netns"], "interfaces": {}, "routes": []}
        if netns.exists(spec["netns"]):
            ipr = netns.open_socket(spec["netns"])
            try:
                links = {link["index"]: link for link in ipr.get_links()}
                addrs: dict[int, list[str]] = {}
                for a in ipr.get_addr(family=2):
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
                for r in ipr.get_routes(family=2, table=254):
                    dst = r.get_attr("RTA_DST")
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
    return result
