"""``python -m cellrig``."""

from .cli import main

main()
