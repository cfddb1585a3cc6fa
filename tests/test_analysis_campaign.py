"""The campaign catalog (finished and live runs, filters) and campaign analysis with dask."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster

from cellrig.analysis import cycle_summary
from cellrig.analysis.life import life_metrics
from cellrig.analysis.parallel import analyse_campaign, analyse_run
from cellrig.analysis.synthetic import COLUMNS, FadeCurve, SyntheticCell, synthesize, write_run
from cellrig.storage import CATALOG_COLUMNS, RunWriter, open_campaign

BASE = SyntheticCell(cycles=120, samples=60, fade=FadeCurve(knee=60, eol=100))
CELLS = [
    replace(BASE, cell_id="A1", chemistry="NMC811/graphite", protocol="1C", ambient=25.0, seed=1),
    replace(BASE, cell_id="A2", chemistry="NMC811/graphite", protocol="2C", ambient=45.0, seed=2),
    replace(BASE, cell_id="B1", chemistry="LFP/graphite", protocol="1C", ambient=25.0, seed=3),
    replace(BASE, cell_id="B2", chemistry="LFP/graphite", protocol="1C", ambient=45.2, seed=4, cycles=80),
]


@pytest.fixture(scope="module")
def campaign_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("campaign")
    for cell in CELLS:
        write_run(folder / "runs" / f"{cell.cell_id}.h5", cell)
    (folder / "notes.h5").write_bytes(b"not an HDF5 file")
    return folder


def test_catalog_has_one_row_per_run_and_skips_other_files(campaign_dir):
    c = open_campaign(campaign_dir)
    assert list(c.catalog.columns) == list(CATALOG_COLUMNS)
    assert c.catalog["cell_id"].tolist() == ["A1", "A2", "B1", "B2"]
    assert c.catalog["status"].eq("finished").all()
    assert c.catalog["rows"].tolist() == [cell.cycles * cell.samples + 1 for cell in CELLS]
    assert c.catalog["temperature"].tolist() == [25.0, 45.0, 25.0, 45.2]
    assert c.catalog["started"].dt.tz is not None and c.catalog["run_id"].is_unique
    assert (
        list(c.skipped) == [str(campaign_dir / "notes.h5")]
        and "not an HDF5 file" in c.skipped[str(campaign_dir / "notes.h5")]
    )
    assert [r.meta["cell"]["id"] for r in c] == ["A1", "A2", "B1", "B2"]


@pytest.mark.parametrize(
    ("criteria", "cells"),
    [
        ({"cell": "A2"}, ["A2"]),
        ({"cell": ["A1", "B2"]}, ["A1", "B2"]),
        ({"chemistry": "LFP/graphite"}, ["B1", "B2"]),
        ({"protocol": "1C"}, ["A1", "B1", "B2"]),
        ({"temperature": 45}, ["A2", "B2"]),
        ({"temperature": (20, 30)}, ["A1", "B1"]),
        ({"chemistry": "LFP/graphite", "temperature": 25}, ["B1"]),
        ({"status": "running"}, []),
    ],
)
def test_filters(campaign_dir, criteria, cells):
    assert open_campaign(campaign_dir).filter(**criteria).catalog["cell_id"].tolist() == cells


def test_a_live_run_is_cataloged_as_running_with_its_rows_so_far(tmp_path):
    synthetic = synthesize(replace(BASE, cell_id="L1", cycles=5))
    columns = {"cycler": dict(COLUMNS["cycler"], temperature=COLUMNS["temperature"])}
    with RunWriter.create(tmp_path / "live.h5", columns, synthetic.meta, cycle_stream="cycler") as w:
        w.append("cycler", **{k: v[:150] for k, v in synthetic.streams["cycler"].items()})
        w.flush()
        live = open_campaign(tmp_path).catalog.iloc[0]
        assert (live["cell_id"], live["status"], live["rows"]) == ("L1", "running", 150)
        result = analyse_campaign(tmp_path, scheduler="synchronous")
        assert result.cycles["complete"].tolist() == [True, True, False]
    assert open_campaign(tmp_path).catalog.loc[0, "status"] == "finished"


def test_open_campaign_refuses_a_missing_folder(tmp_path):
    with pytest.raises(NotADirectoryError, match="not a folder of run files"):
        open_campaign(tmp_path / "nope")


def serial_reference(campaign_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each run summarised one after the other, without dask."""
    paths = open_campaign(campaign_dir).paths
    summaries = [cycle_summary(p) for p in paths]
    life = pd.DataFrame([life_metrics(s).as_dict() for s in summaries], index=[str(p) for p in paths])
    return pd.concat(summaries, ignore_index=True), life


def check_against_serial(result, campaign_dir) -> None:
    cycles, life = serial_reference(campaign_dir)
    assert result.errors.empty
    assert len(result.cycles) == sum(c.cycles for c in CELLS)
    pd.testing.assert_frame_equal(result.cycles.drop(columns=["run_id", "cell_id"]), cycles)
    assert result.cycles.groupby("cell_id", sort=False).size().to_dict() == {c.cell_id: c.cycles for c in CELLS}
    for column in ("eol_robust", "knee", "projected_eol", "censored"):
        np.testing.assert_array_equal(result.life[column], life.loc[result.life.index, column], err_msg=column)
    assert result.life["cell_id"].tolist() == ["A1", "A2", "B1", "B2"]  # catalog columns come along
    assert result.life["censored"].tolist() == [False, False, False, True]  # B2 stops at 80 cycles


@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
def test_local_schedulers_match_a_serial_loop(campaign_dir, scheduler):
    result = analyse_campaign(open_campaign(campaign_dir), scheduler=scheduler, num_workers=2)
    check_against_serial(result, campaign_dir)
    ds = result.cycles_xarray()
    assert dict(ds.sizes) == {"run_id": 4, "cycle": 120}
    assert np.isnan(ds["discharge_capacity"].sel(run_id=result.cycles["run_id"].iloc[-1], cycle=100))  # B2 has 80


def test_a_bad_run_is_reported_not_raised(campaign_dir, tmp_path):
    path = tmp_path / "no_current.h5"
    with RunWriter.create(path, {"cycler": {"voltage": COLUMNS["cycler"]["voltage"]}}) as w:
        w.append("cycler", time=np.arange(3.0), voltage=np.full(3, 3.7))
    result = analyse_campaign([*open_campaign(campaign_dir).paths, path], scheduler="synchronous")
    assert result.errors["path"].tolist() == [str(path)]
    assert "KeyError" in result.errors["error"].iloc[0]
    assert len(result.life) == len(CELLS)
    assert analyse_run(path).error == result.errors["error"].iloc[0]


def test_a_distributed_cluster_runs_the_same_analysis(campaign_dir):
    with (
        LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None, scheduler_port=0
        ) as cluster,
        Client(cluster) as client,
    ):
        done = []
        by_client = analyse_campaign(campaign_dir, scheduler=client, batch=1, progress=done.append)
        by_address = analyse_campaign(campaign_dir, scheduler=cluster.scheduler_address)
        workers = {w["name"] for w in client.scheduler_info()["workers"].values()}
        assert len(workers) == 2
    check_against_serial(by_client, campaign_dir)
    check_against_serial(by_address, campaign_dir)
    assert done == list(range(1, len(CELLS) + 1))  # a call per finished run; notes.h5, no run, not counted


def test_a_folder_is_catalogued_by_the_tasks_as_open_campaign_would(campaign_dir):
    """Given a folder, each task reads its run's catalog row; the result equals analysing open_campaign's."""
    by_folder = analyse_campaign(campaign_dir, scheduler="synchronous")
    by_catalog = analyse_campaign(open_campaign(campaign_dir), scheduler="synchronous")
    pd.testing.assert_frame_equal(by_folder.life, by_catalog.life)
    pd.testing.assert_frame_equal(by_folder.cycles, by_catalog.cycles)
    assert by_folder.errors.empty  # notes.h5 is no run: left out, as open_campaign skips it
    assert list(by_folder.life.columns[: len(CATALOG_COLUMNS) - 1]) == list(CATALOG_COLUMNS[1:])


def test_batches_of_runs_per_task_give_the_same_analysis(campaign_dir):
    check_against_serial(analyse_campaign(campaign_dir, scheduler="threads", batch=3), campaign_dir)
