"""The ``cellrig`` command: the ``main`` group, and every command of the modules by area, registered here."""

import click

from .. import __version__
from . import analysis, lab, notify, observe, runs, serve, sim


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cellrig")
def main() -> None:
    """cellrig runs a battery test lab: it drives cyclers, chambers, data loggers and abuse rigs
    through VISA, streams every reading to HDF5 run files while the test runs, and analyses
    the results.

    \b
    Start here:
      cellrig protocols list           the standard test library (cycle life, HPPC, hot box, nail, crush …)
      cellrig run capacity --out runs/ run one on a virtual cell (no lab file: the virtual lab)
      cellrig campaign FILE --out DIR  many cells at once; cellrig status DIR to watch, pause/stop to steer
      cellrig serve DIR                the runs as a live web page (phone or desktop); alerts: docs/serve.md
      cellrig resume DIR               continue interrupted runs from their last checkpoint
      cellrig summary runs/<file>.h5   status and per-cycle summary of any run file
      cellrig analyze runs/            per-cycle tables (Parquet, CSV) and life metrics of a campaign
      cellrig report runs/ -o r.html   a self-contained HTML report with plots
      cellrig observe RUN --fire no …  what the operator saw in an abuse test, for its verdict
      cellrig test-report RUN -o t.pdf an abuse test's report to its standard (PDF or HTML)
      cellrig sim --write-lab v.toml   serve the virtual lab; then: cellrig lab check v.toml
      cellrig notify test lab.toml     send a test alert to everyone the lab file's [notify] tells
    """


for command in (
    analysis.summary,
    analysis.analyze,
    analysis.report,
    analysis.test_report,
    analysis.import_,
    lab.lab,
    notify.notify,
    sim.sim,
    runs.run,
    runs.campaign,
    runs.resume,
    runs.status,
    serve.serve,
    *runs.OPERATORS,
    observe.observe,
    runs.protocols,
    runs.demo,
):
    main.add_command(command)
