"""The ``mailpacer`` command line (DESIGN §7): click commands, terminal progress, reports.

:func:`main` is the console script; the commands live one module per group (``send``,
``campaigns``, ``config``, ``sandbox``, ``demo``). Nothing beneath imports the CLI.
"""

from mailpacer.cli.main import main

__all__ = ["main"]
