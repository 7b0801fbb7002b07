"""Cluster profiles: the SLURM resources of a run, from `slurm/<name>.toml` and command-line flags."""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lt_bench.errors import UserError

# Where `--cluster NAME` looks for NAME.toml: the working directory's slurm/, then the checkout's.
PROFILE_FOLDERS = (Path("slurm"), Path(__file__).resolve().parents[2] / "slurm")


@dataclass(frozen=True)
class Resources:
    """What one run asks SLURM for; one DDP process per GPU (one process on a CPU-only run)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpus_per_node: int = 0
    processes_per_node: int | None = None  # DDP processes (SLURM tasks); default one per GPU, else 1
    cpus_per_task: int = 1
    mem_gb: float | None = None
    time_min: int = 60
    nodes: int = 1
    array_parallelism: int = 32
    setup: tuple[str, ...] = ()

    @property
    def tasks_per_node(self) -> int:
        return self.processes_per_node or max(self.gpus_per_node, 1)

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_node else "cpu"

    def submitit_parameters(self) -> dict[str, Any]:
        """The parameters of submitit's AutoExecutor.update_parameters."""
        parameters: dict[str, Any] = {
            "name": "lt-bench",
            "nodes": self.nodes,
            "tasks_per_node": self.tasks_per_node,
            "cpus_per_task": self.cpus_per_task,
            "timeout_min": self.time_min,
            "slurm_array_parallelism": self.array_parallelism,
            "slurm_setup": list(self.setup),
        }
        if self.gpus_per_node:
            parameters["gpus_per_node"] = self.gpus_per_node
        if self.mem_gb is not None:
            parameters["mem_gb"] = self.mem_gb
        for name in ("partition", "account", "qos", "constraint"):
            if getattr(self, name) is not None:
                parameters[f"slurm_{name}"] = getattr(self, name)
        return parameters


RESOURCE_KEYS = tuple(f.name for f in dataclasses.fields(Resources))


@dataclass(frozen=True)
class ClusterProfile:
    """Default resources plus per-dataset replacements (e.g. ImageNet-LT takes a whole node)."""

    name: str
    defaults: Resources = field(default_factory=Resources)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def resources(self, dataset: str, overrides: dict[str, Any]) -> Resources:
        """The resources of a run of `dataset`: profile, then its dataset table, then non-None flags."""
        given = {key: value for key, value in overrides.items() if value is not None}
        return dataclasses.replace(self.defaults, **{**self.datasets.get(dataset, {}), **given})


def load_profile(name: str | None) -> ClusterProfile:
    """The profile `name` (a name in slurm/ or a path to a .toml file); None: submitit's defaults."""
    if name is None:
        return ClusterProfile("none")
    path = _find(name)
    try:
        values = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UserError(f"cluster profile {path} is not valid TOML ({error}); fix the file") from error
    datasets = values.pop("datasets", {})
    tables = {"": values, **{f"datasets.{d}.": table for d, table in datasets.items()}}
    for prefix, table in tables.items():
        unknown = sorted(set(table) - set(RESOURCE_KEYS))
        if unknown:
            raise UserError(
                f"{path}: unknown key {prefix}{unknown[0]}; the keys are {', '.join(RESOURCE_KEYS)}"
            )
        if "setup" in table:
            table["setup"] = tuple(table["setup"])
    return ClusterProfile(path.stem, Resources(**values), datasets)


def _find(name: str) -> Path:
    candidates = (
        [Path(name)] if name.endswith(".toml") else [folder / f"{name}.toml" for folder in PROFILE_FOLDERS]
    )
    for path in candidates:
        if path.is_file():
            return path
    known = sorted({p.stem for folder in PROFILE_FOLDERS if folder.is_dir() for p in folder.glob("*.toml")})
    raise UserError(
        f"no cluster profile {name!r} (looked for {', '.join(map(str, candidates))}); "
        f"known profiles: {', '.join(known) or 'none'}; or pass a path to a .toml file"
    )


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """`--launcher`, `--cluster` and the SLURM resource flags of `run` and `sweep`."""
    group = parser.add_argument_group("where runs execute")
    group.add_argument(
        "--launcher",
        choices=("local", "slurm"),
        default="local",
        help="local: in this process (or each torchrun process); slurm: submit through submitit",
    )
    group.add_argument("--cluster", metavar="PROFILE", help="slurm/PROFILE.toml or a path to a .toml profile")
    group.add_argument(
        "--force", action="store_true", help="slurm: submit runs even when their job is still in the queue"
    )
    for name in RESOURCE_KEYS:
        if name == "setup":
            continue
        kind = (
            str
            if name in ("partition", "account", "qos", "constraint")
            else float
            if name == "mem_gb"
            else int
        )
        group.add_argument(f"--{name.replace('_', '-')}", type=kind, help="overrides the profile's " + name)


def resource_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The resource flags the user gave (None for the others)."""
    return {name: getattr(args, name) for name in RESOURCE_KEYS if name != "setup"}
