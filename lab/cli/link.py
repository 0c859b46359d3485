"""``lab link down|up NODE:IF``: pull a cable and plug it back."""

from __future__ import annotations

import typer

from lab import state
from lab.cli.common import out

link_app = typer.Typer(help="Pull a cable (link down) or plug it back (link up).", no_args_is_help=True)


@link_app.command("down")
def link_down(
    where: str = typer.Argument(..., help="NODE:IF"),
    lab: str = typer.Option(None, "--lab", help="Lab name (optional when exactly one is up)."),
) -> None:
    """Pull the cable: a LAN port goes down at the switch (the node's NIC stays up and sees NO-CARRIER);
    a point-to-point link's own end goes down (lab link up puts back the routes the kernel flushed)."""
    from lab.net import faults

    name = state.resolve_lab(lab)
    ep = faults.endpoint(state.read_lab_info(name), where)
    fault = faults.apply(state.Journal(name), faults.link_state(ep, up=False))
    out.print(f"{ep.label}: link down (fault {fault.id}; undo with lab link up {ep.label})")


@link_app.command("up")
def link_up(
    where: str = typer.Argument(..., help="NODE:IF"),
    lab: str = typer.Option(None, "--lab", help="Lab name (optional when exactly one is up)."),
) -> None:
    """Plug the cable back in."""
    from lab.net import faults

    name = state.resolve_lab(lab)
    ep = faults.endpoint(state.read_lab_info(name), where)
    faults.plug_back(state.Journal(name), ep)
    out.print(f"{ep.label}: link up")


def register(app: typer.Typer) -> None:
    app.add_typer(link_app, name="link")
