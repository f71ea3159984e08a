"""The ``segur`` command line: one entry point, one subcommand per job.

Exit codes mean something in a pipeline: 0 success, 1 the job ran but its goal was not met
(e.g. a capacity plan that does not hold the scenario), 2 usage or input error.
"""

from __future__ import annotations

import sys

import click

from segur.errors import InputError


class _Group(click.Group):
    """Turns an :class:`InputError` from any subcommand into a clear message and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except InputError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="segur-loadsim")
def main() -> None:
    """segur-loadsim: will the national record service hold next year's traffic?

    \b
    Example:
      segur simulate scenarios/baseline-2025.yaml --from 2025-10-01 --to 2025-10-31
    """


def _register() -> None:
    from identity.command import vihf
    from record_service.command import serve, token
    from load.command import load, seed
    from planner.command import plan_command
    from simulator.command import simulate

    main.add_command(simulate)
    main.add_command(seed)
    main.add_command(load)
    main.add_command(plan_command)
    main.add_command(serve)
    main.add_command(token)
    main.add_command(vihf)


_register()


if __name__ == "__main__":
    main()
