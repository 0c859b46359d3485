"""jinja2 templates for the daemons of container nodes (dnsmasq, squid, nginx); see lab/services.py."""
