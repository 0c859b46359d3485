"""Captures: tcpdump control inside a node's namespace, and pcap decoding into packet records."""
