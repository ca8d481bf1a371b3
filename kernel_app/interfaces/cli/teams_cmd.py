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
@click.option(
    "--name", default="Kernel App", show_default=True, help="The app's name in Teams (at most 30 characters)."
)
@click.option("--website-url", metavar="URL", help="The developer's website (default: the endpoint's host).")
@click.option("--privacy-url", metavar="URL", help="The privacy statement (default: the endpoint's host).")
@click.option("--terms-url", metavar="URL", help="The terms of use (default: the endpoint's host).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("kernel-app-teams.zip"),
    show_default=True,
    help="Where to write the zip.",
)
def manifest(
    app_id: str,
    endpoint: str,
    name: str,
    website_url: str | None,
    privacy_url: str | None,
    terms_url: str | None,
    output: Path,
) -> None:
    """Write the zipped Teams app package: manifest.json with the bot, and its two icons.

    The manifest is checked against Teams' v1.17 manifest schema before it is written. An org catalogue
    shows the developer's website, privacy statement and terms of use: give real pages for them before
    publishing there (a warning says which are missing).

    \b
    Upload it in Teams (Apps > Manage your apps > Upload an app) or in the Teams Developer Portal; the app
    id is the bot's, the one kernel-app serve reads from CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID:
      kernel-app teams manifest --app-id "$CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID" \\
        --endpoint https://bot.contoso.com/api/messages \\
        --privacy-url https://contoso.com/privacy --terms-url https://contoso.com/terms
    """
    from kernel_app.interfaces.server.teams.manifest import manifest as build
    from kernel_app.interfaces.server.teams.manifest import publishing_warning, write_package

    pages = {"websiteUrl": website_url, "privacyUrl": privacy_url, "termsOfUseUrl": terms_url}
    data = build(app_id, endpoint, name=name, website_url=website_url, privacy_url=privacy_url, terms_url=terms_url)
    written = write_package(output, data)
    click.echo(f"Wrote {written} (manifest.json, color.png, outline.png): upload it in Teams.")
    warning = publishing_warning(data, pages)
    if warning:
        click.echo(f"warning: {warning}", err=True)
