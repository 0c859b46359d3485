"""``python -m lab`` is the ``lab`` command (used by ``lab run --jobs`` for its child runs)."""

from lab.cli import main

main()
