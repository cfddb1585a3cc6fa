"""The virtual lab's wiring, stated once: which cell is on which instrument, channel and probe.

:mod:`.lab` builds the simulators to it; the CLI, the demo, the benches and the tests bind their
runs by it (:func:`cycler`, :func:`oven`, :data:`RIG`, :data:`SMU`).
"""

from ..protocols.preflight import Binding, Probe

#: The cycler's (BT2200's) cells, channels 101–108: each chamber holds every chemistry.
CYCLER_CELLS = ("nmc811", "nmc811", "lfp", "sulfide", "nmc811", "lfp", "lfp", "sulfide")
CYCLER_CHANNELS = range(101, 101 + len(CYCLER_CELLS))
#: The cycler channels whose cells each chamber holds: 101–104 the ESPEC, 105–108 the F4T.
CHAMBER_CHANNELS = {"chamber": range(101, 105), "chamber2": range(105, 109)}

#: The DAQ970A (``daq``): a thermocouple on each cycler cell (on its cycler channel's number) and
#: one in each chamber's air, on these channels.
AIR_PROBES = {"chamber": 109, "chamber2": 110}

#: The DAQ6510 (``daq2``): thermocouples on the rig's cell, the lab air and the SMU's cell; the rig
#: enclosure's gas sensor, in volts.
RIG_CELL_PROBE, LAB_AIR_PROBE, GAS_PROBE, SMU_CELL_PROBE = 101, 102, 103, 104
GAS_SENSOR_V_PER_PPM = 0.01  # a 0–10 V gas transmitter spanning 0–1000 ppm (illustrative)

SMU_CELL_AH = 0.5  # the SMU's cell (the cycler's and the rig's are 5 Ah)

#: Mechanical abuse: the rig, its cell's thermocouple and the enclosure's gas sensor.
RIG = Binding(
    rig="rig",
    daq="daq2",
    probes={
        "temperature": Probe(RIG_CELL_PROBE),
        "gas": Probe(GAS_PROBE, "volt", scale=1 / GAS_SENSOR_V_PER_PPM, units="ppm"),
    },
)
#: Electrical abuse: the SMU and its cell's thermocouple.
SMU = Binding(cycler="smu", daq="daq2", probes={"temperature": Probe(SMU_CELL_PROBE)})


def cycler_cell(channel: int) -> str:
    """The preset of the cell on cycler ``channel``."""
    return CYCLER_CELLS[CYCLER_CHANNELS.index(channel)]


def chamber_of(channel: int) -> str:
    """The chamber role that holds the cell of cycler ``channel``."""
    return next(name for name, channels in CHAMBER_CHANNELS.items() if channel in channels)


def cycler(channel: int, chamber: bool = True) -> Binding:
    """A run on cycler ``channel`` with its cell's thermocouple, and (``chamber``) the chamber holding the cell."""
    room = chamber_of(channel) if chamber else None
    return Binding("cycler", channel, room, None, "daq", {"temperature": Probe(channel)})


def oven(channel: int) -> Binding:
    """A chamber-only run (a hot box) on the chamber holding the cell of cycler ``channel``, with its thermocouple."""
    return Binding(chamber=chamber_of(channel), daq="daq", probes={"temperature": Probe(channel)})
