"""``python -m mailpacer`` is the ``mailpacer`` command."""

from mailpacer.cli import main

main()
