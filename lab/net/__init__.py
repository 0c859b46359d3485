"""Kernel plumbing: namespaces, links, addresses, routes, sysctls, and faults."""
