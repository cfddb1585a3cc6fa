"""cellrig: drive a battery test lab, stream every reading to HDF5, analyse whole campaigns."""

__version__ = "0.1.0"

from .lab import Lab
from .storage import open_campaign, open_run

__all__ = ["Lab", "__version__", "open_campaign", "open_run"]
