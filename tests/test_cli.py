"""The ``cellrig`` command as a user types it (the installed console script, in a subprocess)."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from cellrig import open_run
from cellrig.analysis import cycle_summary
from cellrig.sim.cell import NMC811, Cell

CELLRIG = Path(sys.executable).with_name("cellrig")  # the script pip installed beside this Python


def cellrig(*args: str) -> subprocess.CompletedProcess:
    assert CELLRIG.exists(), f"{CELLRIG} missing: install the package (pip install -e .) first"
    return subprocess.run([str(CELLRIG), *args], capture_output=True, text=True, timeout=600)


def test_help_lists_the_commands():
    out = cellrig("--help")
    assert out.returncode == 0
    for word in ("run", "summary", "HDF5"):
        assert word in out.stdout
    assert "--out" in cellrig("run", "--help").stdout
    listed = cellrig("lab", "list")
    assert listed.returncode == 0 and "Warning" not in listed.stderr


def test_run_a_library_protocol_on_the_virtual_lab_and_summarise(tmp_path):
    out = cellrig("run", "capacity", "--out", str(tmp_path / "runs"), "--set", "cycles=3", "--set", "rest=10 min")
    assert out.returncode == 0, out.stderr
    assert "finished" in out.stdout
    (path,) = (tmp_path / "runs").glob("*.h5")
    table = cycle_summary(open_run(path))
    assert table["cycle"].tolist() == [1, 2, 3]
    # each cycle's discharge capacity is within 3 % of the cell's (1 % spread, little ageing in three cycles)
    assert (abs(table["discharge_capacity"] / Cell(NMC811, 5.0).retained_capacity_ah - 1) < 0.03).all()
    shown = cellrig("summary", str(path), "--csv", str(tmp_path / "s.csv"))
    assert shown.returncode == 0 and "per-cycle summary" in shown.stdout
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 4


def test_a_bad_protocol_is_refused_with_file_and_line_and_no_run_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps:\n  - rest: five\n")
    out = cellrig("run", str(bad), "--out", str(tmp_path / "runs"))
    assert out.returncode == 1
    assert f"{bad}:3: steps[0].rest.duration: 'five' is not a time" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_protocols_list_show_and_check(tmp_path):
    listed = cellrig("protocols", "list")
    assert listed.returncode == 0 and "nail-gbt31485" in listed.stdout and "cycle-life" in listed.stdout
    shown = cellrig("protocols", "show", "hot-box")
    assert shown.returncode == 0 and "GB 38031-2025" in shown.stdout and "target" in shown.stdout
    assert cellrig("protocols", "check", "hot-box", "--set", "target=200 °C").returncode == 0
    refused = cellrig("protocols", "check", "hot-box", "--set", "target=210 °C")
    assert refused.returncode == 1 and "210 °C is outside the chamber's" in refused.stderr
    sweep = cellrig("protocols", "check", "temperature-sweep", "--channel", "101")  # an NMC cell rated to 60 °C
    assert sweep.returncode == 1 and "85 °C is outside the cell's rated -20…60 °C" in sweep.stderr
    assert cellrig("protocols", "check", "temperature-sweep", "--channel", "104").returncode == 0  # the sulfide


def test_summary_of_a_missing_file_says_so(tmp_path):
    out = cellrig("summary", str(tmp_path / "nope.h5"))
    assert out.returncode == 1 and "no such run file" in out.stderr and "Traceback" not in out.stderr


def test_import_turns_a_cycler_export_into_a_run_and_never_overwrites(tmp_path):
    exports = Path(__file__).resolve().parents[2] / "shared" / "data" / "cycler-exports"
    maccor = exports / "xTESLADIAG_000038.078"
    assert maccor.exists(), f"the shared cycler exports are expected at {exports}"
    out = cellrig("import", str(maccor), "--out", str(tmp_path), "--chemistry", "NMC/graphite")
    assert out.returncode == 0, out.stderr
    run = open_run(tmp_path / "xTESLADIAG_000038.078.h5")
    assert run.meta["source"]["format"] == "maccor-text" and run.meta["cell"]["chemistry"] == "NMC/graphite"
    assert len(cycle_summary(run)) > 10
    again = cellrig("import", str(maccor), "--out", str(tmp_path))
    assert again.returncode == 1 and "never overwritten" in again.stderr
    junk = tmp_path / "notes.csv"
    junk.write_text("hello,world\n1,2\n")
    bad = cellrig("import", str(junk), "--out", str(tmp_path))
    assert bad.returncode == 1 and "notes.csv, line 1" in bad.stderr and "Traceback" not in bad.stderr


def test_an_imported_run_and_a_virtual_lab_run_analyse_and_report_as_one_campaign(tmp_path):
    exports = Path(__file__).resolve().parents[2] / "shared" / "data" / "cycler-exports"
    campaign = tmp_path / "campaign"
    assert cellrig("import", str(exports / "xTESLADIAG_000038.078"), "--out", str(campaign)).returncode == 0
    assert cellrig("run", "capacity", "--out", str(campaign), "--set", "cycles=3").returncode == 0
    analysed = cellrig("analyze", str(campaign), "--out", str(tmp_path / "out"))
    assert analysed.returncode == 0, analysed.stderr
    cycles = pd.read_csv(tmp_path / "out" / "cycles.csv")
    assert cycles["cell_id"].nunique() == 2  # the Maccor cell and the virtual one, side by side
    report = cellrig("report", str(campaign), "-o", str(tmp_path / "report.html"))
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "report.html").read_text()
    assert "xTESLADIAG_000038.078" in html and "cell-1" in html


def test_status_shows_live_and_ended_runs_from_another_process(tmp_path):
    from cellrig.protocols.engine import CYCLER_COLUMNS
    from cellrig.storage import RunWriter

    live = RunWriter.create(
        tmp_path / "live.h5",
        {"cycler": CYCLER_COLUMNS},
        {"cell": {"id": "C-7"}, "protocol": {"name": "soak"}},
        cycle_stream="cycler",
    )
    live.event("step_start", "charge", time=0.0, step=1, cycle=3)
    live.append("cycler", time=7200.0, voltage=3.912, current=2.5, step=1, cycle=3)
    live.flush()
    ended = RunWriter.create(
        tmp_path / "ended.h5", {"cycler": CYCLER_COLUMNS}, {"cell": {"id": "C-8"}}, cycle_stream="cycler"
    )
    ended.close("tripped", "cell temperature 61 degC > 60 degC")
    env = {**os.environ, "COLUMNS": "250"}
    shown = subprocess.run([str(CELLRIG), "status", str(tmp_path)], capture_output=True, text=True, env=env, timeout=60)
    live.close()
    assert shown.returncode == 0, shown.stderr
    rows = {line.split("│")[1].strip(): line for line in shown.stdout.splitlines() if line.startswith("│")}
    assert "running" in rows["C-7"] and "charge" in rows["C-7"] and "3.912" in rows["C-7"] and "2.00" in rows["C-7"]
    assert "tripped" in rows["C-8"] and "61 degC" in rows["C-8"]
    missing = cellrig("status", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "no such folder" in missing.stderr


def test_an_operator_command_nobody_takes_is_withdrawn_and_said(tmp_path):
    from cellrig.protocols import control
    from cellrig.protocols.engine import CYCLER_COLUMNS
    from cellrig.storage import RunWriter

    # a run whose writer is alive but whose engine never polls (hung): the command must not wait for it forever
    with RunWriter.create(tmp_path / "hung.h5", {"cycler": CYCLER_COLUMNS}, {"cell": {"id": "C-9"}}) as hung:
        hung.flush()
        said = cellrig("pause", str(tmp_path), "--timeout", "0.5")
        assert not control.control_path(hung.path).exists()  # withdrawn: it will not pause the run later
        refused = cellrig("continue", str(tmp_path))
    assert said.returncode == 1 and "not taken; withdrawn" in said.stderr and "no answer within 0.5 s" in said.stderr
    assert refused.returncode == 1 and "no paused run to continue" in refused.stderr
