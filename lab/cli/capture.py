"""``lab capture NODE:IF -w out.pcap``: an ad-hoc capture on a running lab, until Ctrl-C or --duration."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from lab import state
from lab.cli.common import console, out

if TYPE_CHECKING:
    from lab.capture.records import Packet


def capture(
    where: str = typer.Argument(..., help="NODE:IF"),
    write: Path = typer.Option(..., "--write", "-w", help="pcap file to write."),
    bpf: str = typer.Option(None, "--filter", "-f", help="tcpdump filter, e.g. 'tcp port 80'."),
    duration: float = typer.Option(None, "--duration", "-d", help="Stop after this many seconds."),
    lab: str = typer.Option(None, "--lab", help="Lab name (optional when exactly one is up)."),
) -> None:
    """Capture on a node's interface into a pcap (opens in Wireshark); then print a short listing."""
    from lab.capture.pcapfile import read_pcap
    from lab.capture.tcpdump import Tcpdump
    from lab.net.faults import endpoint

    info = state.read_lab_info(state.resolve_lab(lab))
    ep = endpoint(info, where)  # a clear error for an unknown node or interface
    dump = Tcpdump(ep.label, ep.inside, ep.ifname, write.resolve(), bpf)
    dump.start()
    console.print(f"capturing on {dump.point} into {write} " + ("(Ctrl-C to stop)" if not duration else ""))
    try:
        if duration:
            time.sleep(duration)
        else:
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        dump.stop()
    show_packets(read_pcap(write, dump.point), write)


def register(app: typer.Typer) -> None:
    app.command()(capture)


def show_packets(packets: list[Packet], path: Path, first: int = 20) -> None:
    """How many packets the capture holds, and the first of them as tcpdump would list them."""
    out.print(f"{len(packets)} packets in {path}")
    for p in packets[:first]:
        out.print(p.summary(), markup=False)  # "options [nop,nop,TS …]" is text, not rich markup
