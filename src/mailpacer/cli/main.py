"""The ``mailpacer`` command line (DESIGN §7). Each subcommand lives beside its concept and is
registered here; this module only turns :class:`MailpacerError` into a clear message and an exit
code."""

from __future__ import annotations

import sys
from typing import Any

import click

from mailpacer import __version__
from mailpacer.core.errors import InputError, MailpacerError


class _Group(click.Group):
    """A click group that reports mailpacer errors as one clear message and their exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InputError as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            click.echo(f"{len(exc.problems)} problem(s); nothing was sent.", err=True)
            sys.exit(exc.exit_code)
        except MailpacerError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:  # outside a send (validation, storing): nothing was started
            click.echo("\nmailpacer: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mailpacer")
def main() -> None:
    """Deliver personalized bulk email through your own SMTP server, as fast as it allows."""


# Subcommands register below, one line each.
from mailpacer.cli.sandbox import sandbox_command  # noqa: E402

main.add_command(sandbox_command)
from mailpacer.cli.config import config_command  # noqa: E402

main.add_command(config_command)
from mailpacer.compose.preview import preview_command  # noqa: E402

main.add_command(preview_command)
from mailpacer.cli import campaigns, send  # noqa: E402

for _command in send.COMMANDS + campaigns.COMMANDS:
    main.add_command(_command)
from mailpacer.cli.demo import demo_command  # noqa: E402
from mailpacer.cli.suppress import suppress_command  # noqa: E402

main.add_command(suppress_command)

main.add_command(demo_command)
from mailpacer.cli.serve import serve_command  # noqa: E402

main.add_command(serve_command)
from mailpacer.cli.worker import worker_command  # noqa: E402

main.add_command(worker_command)
