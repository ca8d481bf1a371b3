"""The public names of ``kernel_app``: listed once for type checkers, loaded lazily at run time."""

from __future__ import annotations

import kernel_app


def test_all_names_what_the_lazy_loader_serves() -> None:
    assert sorted(kernel_app.__all__) == sorted(kernel_app._API), "kernel_app.__all__ and _API disagree"


def test_each_public_name_loads() -> None:
    missing = [name for name in kernel_app.__all__ if name != "create_app" and getattr(kernel_app, name) is None]
    assert not missing, f"public names that load as None: {missing}"
