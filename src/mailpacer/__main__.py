"""``python -m mailpacer`` is the ``mailpacer`` command."""

from mailpacer.cli.main import main

main()
