"""The book's experiments (《Linux高性能服务器编程》 ch.1–5 and 16), one module each.

Each module registers one or more experiments with ``@experiment``; ids follow
shared/book/EXPERIMENTS.md with hyphens. Topologies: ``book-lan.yaml`` is the
catalogue's T1/T2 (client kongming20 and server ernest-laptop on a switch,
router and a far host behind it), ``book-web.yaml`` is T3 (containers).
"""
