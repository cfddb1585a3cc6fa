"""A bench script: drive a lab's instruments by hand through ``cellrig.Lab``.

Sets the chamber to 45 °C, waits for the cell to soak, reads the thermocouples, runs one
1C discharge step on the cycler and prints what happened.  Run it against a lab file::

    python examples/bench_script.py LAB.toml

or, with no argument, against the virtual lab started in this process.
"""

import sys
from contextlib import nullcontext

import cellrig
from cellrig.instruments.roles import CyclerStep, DAQChannel
from cellrig.sim import VirtualLab


def bench(lab: cellrig.Lab) -> dict[str, float]:
    chamber, daq, cycler = lab["chamber"], lab["daq"], lab["cycler"]
    try:
        chamber.set_temperature(45.0)
        lab.clock.sleep(2 * 3600)  # soak: two hours of the lab's clock
        daq.configure_channels({"cell": DAQChannel(101, "tc"), "air": DAQChannel(109, "tc")})
        daq.start_scan(interval=10.0)
        lab.clock.sleep(60)
        temps = daq.fetch_samples()
        daq.stop()

        cycler.start_step(CyclerStep("cc", max_time=4 * 3600, current=-5.0, until_voltage_below=2.5))
        while cycler.status() == "running":
            lab.clock.sleep(300)
        samples = cycler.fetch_samples()
        ran = samples["step"] != 0
        t, i = samples["time"][ran], samples["current"][ran]
        return {
            "chamber_air_degC": chamber.read_temperature(),
            "cell_degC": float(temps["cell"][-1]),
            "air_degC": float(temps["air"][-1]),
            "discharged_Ah": float(-(i[1:] * (t[1:] - t[:-1])).sum() / 3600),
        }
    finally:
        lab.make_safe()  # every way out leaves the instruments safe


def main() -> None:
    # ×2,000: fast enough for a demo, slow enough for the simulated world to keep up while the chamber works
    virtual = VirtualLab(speed=2000) if len(sys.argv) < 2 else None
    with virtual or nullcontext():
        if virtual:
            lab = cellrig.Lab.from_dict(virtual.lab_dict(), "<virtual lab>", clock=virtual.clock)
        else:
            lab = cellrig.Lab.from_file(sys.argv[1])
        with lab:
            for name, value in bench(lab).items():
                print(f"{name:18s} {value:8.3f}")


if __name__ == "__main__":
    main()
