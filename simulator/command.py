"""`segur simulate`: placeholder while the engine is written."""
import click


@click.command()
@click.argument("scenario")
def simulate(scenario: str) -> None:
    """Simulate national document traffic from a scenario (work in progress)."""
    raise click.ClickException("not implemented yet")
