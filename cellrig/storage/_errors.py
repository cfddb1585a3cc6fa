"""Errors raised by the run file layer."""


class RunFileError(Exception):
    """Base class for every run-file error."""


class RunNotFoundError(RunFileError, FileNotFoundError):
    """The run file does not exist."""


class RunExistsError(RunFileError, FileExistsError):
    """A run file is never overwritten."""


class NotARunFileError(RunFileError):
    """The file is not HDF5, or not a cellrig run."""


class UnknownStreamError(RunFileError, KeyError):
    """The stream was not declared in this run."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ColumnError(RunFileError, ValueError):
    """Rows given to a stream do not match its columns (name, type or length)."""


class RunClosedError(RunFileError):
    """The writer was closed; nothing more can be written."""


class RunWriteError(RunFileError, OSError):
    """Writing failed (a full disk, a lost volume): the file keeps what was flushed before, nothing more is written."""


class WriterAliveError(RunFileError):
    """Another process is still writing this run."""
