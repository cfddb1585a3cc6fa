"""Child process for the live-read test: report each new row count of a run being written.

Usage: python _live_reader.py RUN_FILE TARGET_ROWS

Prints ``<rows> <status>`` every time the cycler stream grows (read with open_run and, for
the same rows, straight through xarray's h5netcdf engine), until TARGET_ROWS are seen.
"""

import sys
import time

import xarray as xr

from cellrig.storage import open_run


def main() -> None:
    path, target = sys.argv[1], int(sys.argv[2])
    seen = 0
    while seen < target:
        run = open_run(path)
        rows = run.rows("cycler")
        if rows > seen:
            ds = run["cycler"]
            with xr.open_dataset(path, group="streams/cycler", engine="h5netcdf", driver_kwds={"swmr": True}) as direct:
                direct_rows = direct.sizes["time"]
            assert ds["time"].values[-1] == rows - 1
            print(rows, run.status, direct_rows >= rows, flush=True)
            seen = rows
        else:
            time.sleep(0.005)  # poll period of a live view


if __name__ == "__main__":
    main()
