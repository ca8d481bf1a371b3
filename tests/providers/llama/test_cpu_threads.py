"""The default thread count comes from physical cores (sysfs topology), not logical CPUs."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel_app.providers.llama.threads import default_threads, physical_cores


def _sysfs(root: Path, cores: dict[int, tuple[int, int]]) -> Path:
    for cpu, (package, core) in cores.items():
        topology = root / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
        (topology / "core_id").write_text(f"{core}\n")
    return root


def test_hyper_threads_of_one_core_count_once(tmp_path: Path) -> None:
    sysfs = _sysfs(tmp_path, {0: (0, 0), 1: (0, 0), 2: (0, 1), 3: (0, 1)})
    assert physical_cores({0, 1, 2, 3}, sysfs) == 2
    assert physical_cores({0, 1}, sysfs) == 1  # only the CPUs this process may use


def test_the_same_core_id_on_two_packages_is_two_cores(tmp_path: Path) -> None:
    sysfs = _sysfs(tmp_path, {0: (0, 0), 1: (1, 0)})
    assert physical_cores({0, 1}, sysfs) == 2


def test_without_topology_the_logical_count_is_used(tmp_path: Path) -> None:
    assert physical_cores({0, 1, 2}, tmp_path) == 3


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (3, 2), (8, 7), (64, 8)])
def test_one_core_is_left_free_and_at_most_eight_threads(cores: int, threads: int) -> None:
    assert default_threads(cores) == threads


def test_this_machine_gets_a_sane_default() -> None:
    assert 1 <= default_threads() <= max(physical_cores(), 1)
