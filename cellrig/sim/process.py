"""The virtual lab in a process of its own (``cellrig sim``), so the simulation and the engine each get a core.

:func:`inject` plays a fault on one of its instruments from any other process, through the
control line its lab file names (``[virtual] control``, see :class:`~.lab.LabControl`; cellrig's
client of it is :mod:`cellrig.lab_control`).
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

from ..lab_control import ask

STARTUP_S = 60.0
PARENT_POLL_S = 0.5


def orphaned(then: Callable[[], None]) -> threading.Thread:
    """Call ``then`` once the process that started this one has ended (this one is re-parented)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        then()

    watcher = threading.Thread(target=watch, name="cellrig-parent-watch", daemon=True)
    watcher.start()
    return watcher


@contextlib.contextmanager
def served_lab(lab_file: str | Path, **options: float | str) -> Iterator[Path]:
    """Serve the virtual lab (``cellrig sim`` with ``options`` as flags) until the block ends; yield its lab file.

    The server ends with this process too, however it ends (``--with-parent``): no orphan outlives a kill -9.
    """
    lab_file = Path(lab_file)
    lab_file.parent.mkdir(parents=True, exist_ok=True)
    lab_file.unlink(missing_ok=True)
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in options.items()]
    sim = subprocess.Popen(
        [sys.executable, "-m", "cellrig", "sim", *flags, "--with-parent", "--write-lab", str(lab_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_S
        while not lab_file.exists():  # written atomically once every instrument listens
            if sim.poll() is not None:
                raise RuntimeError(f"the virtual lab did not start: {sim.stderr.read().strip()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the virtual lab did not write {lab_file} within {STARTUP_S:g} s")
            time.sleep(0.05)
        yield lab_file
    finally:
        sim.send_signal(signal.SIGINT)
        try:
            sim.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sim.kill()


def inject(lab_file: str | Path, role: str, kind: str, count: int = 1, match: str = "") -> None:
    """Play fault ``kind`` on the next ``count`` commands to ``role`` starting with ``match``, in the
    virtual lab serving ``lab_file``; ValueError naming the reason if the lab refuses it."""
    line = " ".join(["FAULT", role, kind, str(count), match]).rstrip()
    reply = ask(tomllib.loads(Path(lab_file).read_text())["virtual"]["control"], line)
    if reply != "OK":
        raise ValueError(f"{lab_file}: the virtual lab refused {line!r}: {reply or 'no reply'}")
