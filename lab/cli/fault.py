"""``lab fault add|clear|ls``: drops, rejects, loss, rate limits and impairments (delay and friends)."""

from __future__ import annotations

import typer
from rich.table import Table

from lab import state
from lab.cli.common import out
from lab.errors import InputError
from lab.topology import units

fault_app = typer.Typer(help="Inject faults on a node's interface, list and clear them.", no_args_is_help=True)
LabOption = typer.Option(None, "--lab", help="Lab name (optional when exactly one is up).")


def _percent(text: str) -> float:
    """``--loss 30%`` (the % required, as in a topology's ``impair:``, so 1 and 100 cannot be confused)."""
    try:
        return units.percent(text)
    except ValueError as exc:
        raise InputError(f"--loss: {exc}") from None


IMPAIR_HELP = "(an impairment: netem, or lab's emulator without it)"


@fault_app.command("add")
def add(
    where: str = typer.Argument(..., help="NODE:IF"),
    loss: str = typer.Option(None, "--loss", help="Random loss, e.g. 30%. Alone: an iptables rule, both "
                                                  "directions; with other impairments: part of them."),
    drop: str = typer.Option(None, "--drop", help="Drop matching packets, e.g. 'tcp syn dport 80' (default: in)."),
    reject: str = typer.Option(None, "--reject", help="Reject matching packets (ICMP error or TCP RST; default: in)."),
    reject_with: str = typer.Option("icmp-port-unreachable", "--reject-with", help="e.g. tcp-reset"),
    rate: str = typer.Option(None, "--rate", help="Rate limit, e.g. 1mbit (default: out). Alone: tc tbf."),
    delay: str = typer.Option(None, "--delay", help=f"Delay, e.g. 50ms {IMPAIR_HELP}."),
    jitter: str = typer.Option(None, "--jitter", help="Jitter for --delay, e.g. 10ms: each packet waits delay±jitter."),
    duplicate: str = typer.Option(None, "--duplicate", help=f"Duplicate this share, e.g. 1% {IMPAIR_HELP}."),
    reorder: str = typer.Option(None, "--reorder", help="Send this share at once, ahead of the rest (needs --delay)."),
    corrupt: str = typer.Option(None, "--corrupt", help=f"Flip a bit in this share, e.g. 0.1% {IMPAIR_HELP}."),
    limit: int = typer.Option(None, "--limit", min=1, help="At most this many packets wait (netem's default 1000)."),
    direction: str = typer.Option(None, "--direction", help="in, out or both (default: out; --loss alone: both; "
                                                             "--drop and --reject: in)."),
    emulator: str = typer.Option(None, "--emulator", help="netem, lab or auto (default: $LAB_EMULATOR, else auto: "
                                                          "netem where the kernel has it)."),
    lab: str = LabOption,
) -> None:
    """Add one fault. Faults last until cleared, the experiment ends, or the lab goes down."""
    from lab.net import faults, impair

    if direction not in (None, "in", "out", "both"):
        raise InputError(f"--direction {direction!r}: in, out or both")
    wanted = {"delay": delay, "jitter": jitter, "loss": loss, "duplicate": duplicate, "reorder": reorder,
              "corrupt": corrupt, "rate": rate, "limit": limit}
    impairing = {k: v for k, v in wanted.items() if v is not None}
    if sum(x is not None for x in (drop, reject)) + bool(impairing) != 1:
        raise InputError("give one of --drop, --reject, or impairments (--loss, --rate, --delay, --jitter, "
                         "--duplicate, --reorder, --corrupt, --limit)")
    name = state.resolve_lab(lab)
    info = state.read_lab_info(name)
    ep = faults.endpoint(info, where)
    d = direction
    if drop:
        fault = faults.drop(ep, drop, d or "in")  # type: ignore[arg-type]
    elif reject:
        fault = faults.reject(ep, reject, d or "in", reject_with)  # type: ignore[arg-type]
    elif set(impairing) == {"loss"}:
        fault = faults.loss(ep, _percent(loss), d or "both")  # type: ignore[arg-type]
    elif set(impairing) == {"rate"}:
        fault = faults.rate(ep, rate, d or "out")  # type: ignore[arg-type]
    else:
        fault = impair.impair(ep, impair.spec_from(impairing), d or "out", emulator or info.get("emulator"))  # type: ignore[arg-type]
    faults.apply(state.Journal(name), fault)
    out.print(f"fault {fault.id}: {fault.what} on {fault.where}")


@fault_app.command("clear")
def clear(
    where: str = typer.Argument(None, help="NODE:IF (default: every fault of the lab)."),
    fault_id: str = typer.Option(None, "--id", help="Clear only this fault."),
    lab: str = LabOption,
) -> None:
    """Remove faults (all of the lab's, those on NODE:IF, or one --id)."""
    from lab.net import faults

    name = state.resolve_lab(lab)
    label = faults.endpoint(state.read_lab_info(name), where).label if where else None
    done = faults.clear(state.Journal(name), where=label, fault_id=fault_id)
    if fault_id and not done:
        raise InputError(f"lab {name} has no active fault {fault_id!r}", f"see: lab fault ls --lab {name}")
    out.print(f"cleared {len(done)} fault(s)" + "".join(f"\n  {e['id']}: {e['what']} on {e['where']}" for e in done))


@fault_app.command("ls")
def list_faults(lab: str = LabOption) -> None:
    """The lab's active faults."""
    from lab.net import faults

    name = state.resolve_lab(lab)
    table = Table("id", "where", "what")
    for e in faults.active(state.Journal(name)):
        table.add_row(e["id"], e["where"], e["what"])
    out.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(fault_app, name="fault")
