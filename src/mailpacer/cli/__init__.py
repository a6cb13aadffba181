"""The ``mailpacer`` command line (DESIGN §7): click commands, terminal progress, reports."""

from mailpacer.cli.main import main

__all__ = ["main"]
