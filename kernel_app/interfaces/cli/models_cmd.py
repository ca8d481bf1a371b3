"""``kernel-app models``: the embedded model tiers, whether each is installed and verified."""

from __future__ import annotations

import json

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--prepare",
    "prepare",
    metavar="TIER",
    default=None,
    help="Join and verify TIER's file now (otherwise done on its first use).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the tiers as JSON.")
def models(prepare: str | None, as_json: bool) -> None:
    """List the embedded model tiers: installed or not, size, verified, default.

    \b
    Choose one with --model NAME (or KERNEL_APP_MODEL), e.g.:
      kernel-app --model qwen2.5-coder-0.5b run Writer.ShortPoem --input "the sea"
    A path to any .gguf file works too.
    """
    from kernel_app.providers.llama.cache import cache_dir, ensure_model, is_verified, parts_installed
    from kernel_app.providers.llama.threads import default_threads
    from kernel_app.providers.llama.tiers import DEFAULT_TIER, TIERS, get_tier

    if prepare is not None:
        click.echo(ensure_model(get_tier(prepare)))
        return
    rows = [
        {
            "name": tier.name,
            "model": tier.title,
            "size_mb": round(tier.size / 1e6),
            "installed": parts_installed(tier),
            "verified": is_verified(tier),
            "default": tier.name == DEFAULT_TIER,
            "install": tier.install_command,
            "licence": tier.licence,
        }
        for tier in TIERS.values()
    ]
    if as_json:
        click.echo(json.dumps({"cache": str(cache_dir()), "threads": default_threads(), "tiers": rows}, indent=2))
        return
    header = f"{'NAME':<20} {'SIZE':>8}  {'INSTALLED':<9}  {'VERIFIED':<8}  MODEL"
    click.echo(header)
    for row in rows:
        mark = " (default)" if row["default"] else ""
        click.echo(
            f"{row['name']:<20} {row['size_mb']:>5} MB  {_yes(row['installed']):<9}  {_yes(row['verified']):<8}  "
            f"{row['model']}{mark}"
        )
        if not row["installed"]:
            click.echo(f"{'':<20} install: {row['install']}")
    click.echo(
        f"\ncache: {cache_dir()} (a tier is joined and verified there on first use; "
        f"'kernel-app models --prepare NAME' does it now)"
    )
    click.echo(f"threads: {default_threads()} by default (physical cores but one); set KERNEL_APP_LOCAL_THREADS")


def _yes(value: bool) -> str:
    return "yes" if value else "no"
