"""lab: sealed multi-host network labs on one Linux machine, and the book's TCP/IP experiments."""

__version__ = "0.1.0"
