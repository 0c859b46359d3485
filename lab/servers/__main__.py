"""``python3 -m lab.servers``: list the programs, one per line, name then description."""

from __future__ import annotations

from lab.servers import PROGRAMS


def main() -> None:
    width = max(len(name) for name in PROGRAMS)
    for name, description in PROGRAMS.items():
        print(f"{name:<{width}}  {description}")
    print("\nrun one with: python3 -m lab.servers.<name> --help")


if __name__ == "__main__":
    main()
