"""A lab over several machines: the cluster file, each machine's Docker engine, and a simulated cluster.

A *machine* is a Docker engine that is a member of one Docker Swarm. ``lab`` reaches a machine
only through that engine's endpoint (unix, ssh or tcp with TLS), never through a shared kernel,
so the same code serves machines in a rack and the local cluster that tests use.

- :mod:`lab.cluster.model`: what a cluster file may say (pydantic; errors with file:line).
- :mod:`lab.cluster.engines`: connecting to each machine's engine, and finding it in the Swarm.
- :mod:`lab.cluster.doctor`: every machine checked, each problem with its fix.
- :mod:`lab.cluster.local`: ``lab cluster local up N``: N machines on this one, each a network
  namespace with its own dockerd, joined into a Swarm over an underlay bridge with no route out.
"""
