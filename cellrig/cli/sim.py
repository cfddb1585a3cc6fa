"""The ``sim`` command: serve the virtual lab."""

import threading
from pathlib import Path

import click
from rich.table import Table

from ..protocols.stopping import StopRequest, signals_ask_to_stop
from ..sim import DEFAULT_SPEED
from ..sim._scpi import FAULT_KINDS, Fault
from ..sim.lab import VirtualLab
from ..sim.process import orphaned
from ._common import console, err


@click.command()
@click.option(
    "--speed",
    type=click.FloatRange(min=1),
    default=DEFAULT_SPEED,
    show_default=True,
    help=(
        "How much faster than real time the virtual lab's clock runs (a scaled wall clock, which other "
        "processes share). A run whose readings fall 3 s of real time behind it ends, naming the speed "
        "this host held."
    ),
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the cells' cell-to-cell variation.")
@click.option("--dt", type=click.FloatRange(min=0.1), default=1.0, show_default=True, help="World time step (s).")
@click.option(
    "--ageing",
    type=click.FloatRange(min=1),
    default=1.0,
    show_default=True,
    help="Cells age this many times faster: the ageing laws see N× the time and the charge throughput, at unchanged "
    "C-rates and temperatures (end of life within a short campaign; docs/ageing.md).",
)
@click.option(
    "--specimen",
    type=click.Choice(["nmc811", "lfp", "sulfide"]),
    default="nmc811",
    show_default=True,
    help="Chemistry of the rig's and the SMU's cell.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65000),
    default=0,
    show_default=True,
    help="Serve the roles on PORT, PORT+1 … in order (0: free ports), e.g. for examples/lab-virtual.toml.",
)
@click.option(
    "--write-lab",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a lab.toml pointing at the served instruments (for `cellrig lab check` …).",
)
@click.option(
    "--with-parent",
    is_flag=True,
    help="Stop when the process that started this one ends, however it ends (kill -9 included).",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="ROLE:KIND[:COUNT[:COMMAND]]",
    help=f"Inject a fault: KIND is {', '.join(FAULT_KINDS)}, on the next COUNT "
    "(default 1) commands starting with COMMAND (default any); nan: the replies' numbers read NAN (a logger's "
    "readings its overload value); stall (loggers only): the scan's readings are lost until then. Repeatable.",
)
def sim(
    speed: float,
    seed: int,
    dt: float,
    ageing: float,
    specimen: str,
    port: int,
    write_lab: Path | None,
    with_parent: bool,
    faults: tuple[str, ...],
) -> None:
    """Serve the virtual lab in the foreground until Ctrl-C (or SIGTERM).

    Every simulated instrument listens on its own localhost port and speaks its real
    command set; the table shows each role's VISA resource.  A control line on one more
    port (after the roles' with --port; in the lab file as [virtual] control = "HOST:PORT")
    takes faults while the lab runs, one line each, answered OK or ERR <reason>:
    FAULT ROLE KIND [COUNT [COMMAND]], as --fault; it is the virtual lab's test facility,
    no instrument's command.
    """
    planned: dict[str, list[Fault]] = {}
    for text in faults:
        parts = text.split(":", 3)
        role, kind, count, match = parts + ["", "1", ""][len(parts) - 1 :]
        if kind not in FAULT_KINDS or not count.isdigit():
            kinds = ", ".join(FAULT_KINDS)
            raise click.BadParameter(f"{text!r}: expected ROLE:KIND[:COUNT[:COMMAND]], KIND one of {kinds}")
        planned.setdefault(role, []).append(Fault(kind, int(count), match))
    try:
        virtual = VirtualLab(speed=speed, seed=seed, faults=planned, dt=dt, ageing=ageing, specimen=specimen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fault") from None
    try:
        virtual.start(port)
    except OSError as exc:
        raise click.ClickException(f"cannot serve the virtual lab on port {port}: {exc}") from None
    with virtual:
        table = Table(title=f"virtual lab, clock ×{speed:g}", title_justify="left")
        for header in ("role", "driver", "VISA resource"):
            table.add_column(header)
        for name, resource in virtual.resources().items():
            table.add_row(name, virtual.roles[name].driver, resource)
        console.print(table)
        console.print(f"control: {virtual.control_address} (FAULT ROLE KIND [COUNT [COMMAND]])", highlight=False)
        if write_lab:
            console.print(f"lab file: {virtual.write_lab(write_lab)}")
        console.print("serving; Ctrl-C to stop", highlight=False)
        done = threading.Event()
        if with_parent:
            orphaned(done.set)
        with signals_ask_to_stop(StopRequest(done)):
            done.wait()
        err.print("stopped")
