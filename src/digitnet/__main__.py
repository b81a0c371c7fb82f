"""Allow `python -m digitnet`."""

from digitnet.cli import entry_point

entry_point()
