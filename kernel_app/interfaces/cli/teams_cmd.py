"""``kernel-app teams manifest``: the Teams app package for the bot that ``kernel-app serve`` runs."""

from __future__ import annotations

from pathlib import Path

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def teams() -> None:
    """Teams: the app package to upload (the bot itself is served by kernel-app serve at /api/messages)."""


@teams.command()
@click.option("--app-id", required=True, metavar="GUID", help="The Entra application (client) id of the bot.")
@click.option(
    "--endpoint", required=True, metavar="URL", help="Where Teams reaches the bot: https://HOST/api/messages."
)
@click.option("--name", default="Kernel App", show_default=True, help="The app's name in Teams.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("kernel-app-teams.zip"),
    show_default=True,
    help="Where to write the zip.",
)
def manifest(app_id: str, endpoint: str, name: str, output: Path) -> None:
    """Write the zipped Teams app package: manifest.json with the bot, and its two icons.

    \b
    Upload it in Teams (Apps > Manage your apps > Upload an app) or in the Teams Developer Portal:
      kernel-app teams manifest --app-id 00000000-0000-0000-0000-000000000000 \\
        --endpoint https://kernel-app.example.com/api/messages
    """
    from kernel_app.interfaces.server.teams.manifest import write_package

    written = write_package(output, app_id, endpoint, name=name)
    click.echo(f"Wrote {written} (manifest.json, color.png, outline.png): upload it in Teams.")
