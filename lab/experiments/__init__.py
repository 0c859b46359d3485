"""Experiments: scripted scenarios on a lab, decided from captures and program output.

engine.py   the Experiment definition, its parameters, and discovery (package + --path)
context.py  Run: what an experiment's steps call (exec, servers, capture, faults, sysctls, expect)
runner.py   bring up the lab, run the steps, undo every change, decide the verdict, write reports
expect.py   the expectation library (claims that read like the book's)
book/       the book's experiments, one module each
"""
