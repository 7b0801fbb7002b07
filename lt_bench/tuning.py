"""`lt-bench tune`: one seeded Optuna study per (method, dataset, tuning budget) on validation.

The objective is the validation balanced accuracy, mean over the tuning seeds (never the test split);
the first trial is the untuned recipe. Every trial is an ordinary run whose record, marked as a
trial, lives in the study's own results tree `<output>/tuning/<study>/` (off the plain leaderboard).
The study is Optuna's journal file there: processes and SLURM jobs share it, and a study killed
mid-way resumes with exactly the trials asked for, a killed trial's runs resuming from their checkpoints.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import optuna

from lt_bench.atomic import write_json
from lt_bench.config import SECOND_STAGE_FIELDS, RunConfig
from lt_bench.data.base import DATASETS
from lt_bench.errors import UserError
from lt_bench.method import METHODS
from lt_bench.search_space import Range
from lt_bench.stages import run_stages

TUNING_FOLDER = "tuning"
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")
SAMPLER_SEED = 0
OBJECTIVE = "validation balanced accuracy, mean over the tuning seeds"
CONFIG_FIELDS = frozenset(field.name for field in fields(RunConfig))
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Study:
    """What a study tunes (the untuned recipe `base`), on which seeds, and its budget and search."""

    base: RunConfig
    seeds: tuple[int, ...]
    trials: int
    sampler: str = "tpe"
    pruner: str = "median"

    def __post_init__(self) -> None:
        if DATASETS.get(self.base.dataset).validation_is_test:
            raise UserError(
                f"{self.base.dataset}'s validation split is its test split, so tuning on it would "
                f"select on test images; tune on a dataset with a held-out validation split"
            )
        if self.trials < 1:
            raise UserError(f"--trials must be at least 1, got {self.trials}")

    @property
    def name(self) -> str:
        """`<dataset>-<method>-<N>trials-<digest of the recipe, seeds and search>`."""
        identity = {**self.base.identity(), "seed": None}
        search = [identity, list(self.seeds), self.trials, self.sampler, self.pruner]
        digest = hashlib.sha256(json.dumps(search, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.base.dataset}-{self.base.method}-{self.trials}trials-{digest}"

    @property
    def folder(self) -> Path:
        return Path(self.base.output) / TUNING_FOLDER / self.name

    @property
    def space(self) -> dict[str, Range]:
        return METHODS.get(self.base.method).search_space()

    def budget(self) -> dict[str, Any]:
        """The tuning budget: trials, each training every tuning seed for the recipe's epochs."""
        return {"trials": self.trials, "epochs": self.base.epochs, "seeds": list(self.seeds)}

    def recipe_params(self) -> dict[str, float]:
        """The untuned recipe as a point of the search space: the first trial of every study."""
        options = METHODS.get(self.base.method).options
        return {
            name: recipe_value(self.base, name)
            if name in CONFIG_FIELDS
            else self.base.method_options.get(name, options[name].default)
            for name in self.space
        }

    def trial_config(self, params: dict[str, float], seed: int) -> RunConfig:
        """The run of one tuning seed of a trial: the recipe with the trial's values."""
        changes = {name: value for name, value in params.items() if name in CONFIG_FIELDS}
        options = {name: value for name, value in params.items() if name not in CONFIG_FIELDS}
        return self.base.replace(
            output=str(self.folder),
            seed=seed,
            method_options={**self.base.method_options, **options},
            **changes,
        )

    def describe(self) -> dict[str, Any]:
        """What study.json keeps: enough to find the study again and to train its best trial."""
        return {
            "name": self.name,
            "method": self.base.method,
            "dataset": self.base.dataset,
            "budget": self.budget(),
            "sampler": self.sampler,
            "pruner": self.pruner,
            "objective": OBJECTIVE,
            "base": self.base.to_json(),
        }


def load_study(study: Study, worker: int = 0) -> optuna.Study:
    """The Optuna study in `<folder>/journal.log`, created (with study.json) if new. Its sampler's
    seed comes from the worker's index and the trials already there: a study run start to end by one
    worker is reproducible, and neither a resumed study nor a second worker draws the same values again."""
    study.folder.mkdir(parents=True, exist_ok=True)
    if not (study.folder / "study.json").exists():
        write_json(study.folder / "study.json", study.describe())
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(study.folder / "journal.log"))
    )
    existing = 0
    if study.name in optuna.get_all_study_names(storage):
        existing = len(optuna.load_study(study_name=study.name, storage=storage).get_trials(deepcopy=False))
    seed = _sampler_seed(worker, existing)
    sampler = (
        optuna.samplers.TPESampler(seed=seed)
        if study.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    pruner = optuna.pruners.MedianPruner() if study.pruner == "median" else optuna.pruners.NopPruner()
    return optuna.create_study(
        study_name=study.name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction="maximize",
        load_if_exists=True,
    )


def _sampler_seed(worker: int, trials_before: int) -> int:
    text = json.dumps([SAMPLER_SEED, worker, trials_before])
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) if worker or trials_before else SAMPLER_SEED


def work(study: Study, threads: int | None = None, worker: int = 0) -> None:
    """Ask, train and tell trials until the study holds `study.trials` finished ones; `worker` is
    this worker's index among those working on the study at once."""
    optuna_study = load_study(study, worker)
    while (trial := next_trial(study, optuna_study)) is not None:
        evaluate(study, optuna_study, trial, threads)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """The study's ask lock, so concurrent workers never ask beyond the budget."""
    with (folder / "ask.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def next_trial(study: Study, optuna_study: optuna.Study) -> optuna.Trial | None:
    """The next trial to train, or None when every trial of the budget is finished or being trained.

    Under the ask lock: a trial whose worker died (kill -9) is failed and its values enqueued again,
    so its runs resume from their checkpoints; a new study first enqueues the untuned recipe.
    """
    with _locked(study.folder):
        trials = optuna_study.get_trials(deepcopy=False)
        if not trials:
            optuna_study.enqueue_trial(study.recipe_params(), user_attrs={"recipe": True})
        for trial in trials:
            if trial.state == optuna.trial.TrialState.RUNNING and not _alive(trial.user_attrs.get("owner")):
                attrs = {"recipe": trial.user_attrs.get("recipe", False), "retry_of": trial.number}
                optuna_study.enqueue_trial(trial.params, user_attrs=attrs)
                optuna_study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        states = [trial.state for trial in optuna_study.get_trials(deepcopy=False)]
        waiting = states.count(optuna.trial.TrialState.WAITING)
        taken = sum(states.count(state) for state in (*FINISHED, optuna.trial.TrialState.RUNNING))
        if not waiting and taken >= study.trials:
            return None
        trial = optuna_study.ask()
        trial.set_user_attr("owner", _owner())
        return trial


def suggest(trial: optuna.Trial, study: Study) -> dict[str, float]:
    """The trial's value of every setting of the search space."""
    params = {}
    for name, search in study.space.items():
        low, high = search.bounds(recipe_value(study.base, name) if name in CONFIG_FIELDS else None)
        if search.integer:
            params[name] = trial.suggest_int(name, int(low), int(high), log=search.log)
        else:
            params[name] = trial.suggest_float(name, low, high, log=search.log)
    return params


class TrialPruned(Exception):
    """The pruner stopped a trial on its validation curve."""


def evaluate(study: Study, optuna_study: optuna.Study, trial: optuna.Trial, threads: int | None) -> None:
    """Train the trial's run of every tuning seed (a finished one is reused), then tell its mean
    validation balanced accuracy; a pruned trial is told so and its run recorded as pruned."""
    from lt_bench.runner import finished_record, run

    params = suggest(trial, study)
    scores = []
    for position, seed in enumerate(study.seeds):
        config = study.trial_config(params, seed)
        if threads is not None:  # a local worker's share of the cores; else the study's own count
            config = config.replace(threads=threads)

        def report(
            epoch: int, score: float, offset: int = position * config.epochs, seed: int = seed
        ) -> None:
            trial.report(score, offset + epoch)  # the seeds' curves one after another
            if trial.should_prune():
                raise TrialPruned(f"pruned at epoch {epoch} of seed {seed} (median pruner)")

        try:
            record = finished_record(config) or run(config, on_validation=report)
        except TrialPruned as stop:
            _record_pruned(config, study, trial.number, str(stop))
            optuna_study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return
        _mark_trial(config, record, study, trial.number)
        scores.append(record["metrics"]["val"]["balanced_accuracy"])
    optuna_study.tell(trial, statistics.fmean(scores))


def _trial_block(study: Study, number: int) -> dict[str, Any]:
    source = DATASETS.get(study.base.dataset)
    return {
        "study": study.name,
        "number": number,
        "objective": OBJECTIVE,
        "validation": f"{source.name}'s validation split, apart from its test split ({source.description})",
        "budget": study.budget(),
    }


def _mark_trial(config: RunConfig, record: dict[str, Any], study: Study, number: int) -> None:
    """The run's record marked as this study's trial."""
    from lt_bench.records import write_record

    write_record(config.output, {**record, "trial": _trial_block(study, number)})


def _record_pruned(config: RunConfig, study: Study, number: int, why: str) -> None:
    """A record of a pruned trial's run: its configuration and the validation curve it reached."""
    from lt_bench.curves import training_curve
    from lt_bench.records import now, write_record
    from lt_bench.runner import RunPaths, record_identity

    write_record(
        config.output,
        {
            **record_identity(config),
            "status": "pruned",
            "metrics": {},
            "error": why,
            "curve": training_curve(RunPaths.of(config).log),
            "trial": _trial_block(study, number),
            "finished_at": now(),
        },
    )


def _owner() -> dict[str, Any]:
    """This process: host, pid and start time (so a reused pid is not taken for it)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid())}


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(owner: dict[str, Any] | None) -> bool:
    """Whether the process that asked a trial still runs; one on another host is taken to."""
    if not owner:
        return False
    if owner["host"] != socket.gethostname():
        return True
    started = _start_time(owner["pid"])
    return started is not None and started == owner["started"]


def finished_trials(optuna_study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's trials that count towards its budget, in order."""
    return [trial for trial in optuna_study.get_trials(deepcopy=False) if trial.state in FINISHED]


def studies(output: str | Path, method: str, dataset: str) -> list[dict[str, Any]]:
    """study.json of every study of `method` on `dataset` under `<output>/tuning/`."""
    found = []
    for path in sorted((Path(output) / TUNING_FOLDER).glob("*/study.json")):
        described = json.loads(path.read_text())
        if described["method"] == method and described["dataset"] == dataset:
            found.append(described)
    return found


def best_trial(described: dict[str, Any], output: str | Path) -> dict[str, Any]:
    """The best finished trial of a described study: its number, values and validation score."""
    base = RunConfig.from_json(described["base"])
    study = Study(
        base.replace(output=str(output)),
        tuple(described["budget"]["seeds"]),
        described["budget"]["trials"],
        described["sampler"],
        described["pruner"],
    )
    optuna_study = load_study(study)
    complete = [t for t in finished_trials(optuna_study) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise UserError(
            f"study {described['name']} has no finished trial yet; rerun its `lt-bench tune` command"
        )
    best = max(complete, key=lambda trial: (trial.value, -trial.number))
    return {
        "number": best.number,
        "params": dict(best.params),
        "value": best.value,
        "finished": len(finished_trials(optuna_study)),
    }


def _without_seed(config: RunConfig) -> dict[str, Any]:
    return {**config.identity(), "seed": None}


def tuned_config(base: RunConfig, trials: int | None) -> RunConfig:
    """`base` (the shared recipe with the user's overrides) with the values of the best trial of its
    study; one line naming the `lt-bench tune` command when there is none, or several budgets."""
    found = [
        described
        for described in studies(base.output, base.method, base.dataset)
        if _without_seed(RunConfig.from_json(described["base"]).replace(output=base.output))
        == _without_seed(base)
        and trials in (None, described["budget"]["trials"])
    ]
    if not found:
        budget = f" --trials {trials}" if trials else " --trials N"
        raise UserError(
            f"no study of {base.method} on {base.dataset} with this recipe under {base.output}/tuning; "
            f"run `lt-bench tune --methods {base.method} --dataset {base.dataset}{budget}` with the same "
            f"options first"
        )
    if len(found) > 1:
        budgets = ", ".join(sorted({str(described["budget"]["trials"]) for described in found}))
        raise UserError(
            f"{base.method} on {base.dataset} has studies of several budgets or seeds ({budgets} trials); "
            f"pass --trials N, and the tuning --seeds if those differ"
        )
    described = found[0]
    best = best_trial(described, base.output)
    study = Study(base, tuple(described["budget"]["seeds"]), described["budget"]["trials"])
    tuning = {
        "study": described["name"],
        "budget": described["budget"],
        "finished_trials": best["finished"],
        "best_trial": best["number"],
        "best_validation_score": best["value"],
        "values": best["params"],
    }
    return study.trial_config(best["params"], base.seed).replace(
        output=base.output, protocol="tuned", tuning=tuning
    )


def recipe_value(config: RunConfig, name: str) -> float:
    """The recipe's value of the RunConfig field `name`; an unset `second_stage_*` is the value the
    method's declared second stage trains with (`lt_bench.stages`)."""
    value = getattr(config, name)
    if value is None and name in SECOND_STAGE_FIELDS:
        return getattr(run_stages(config)[-1], name.removeprefix("second_stage_"))
    return value


def show_space(base: RunConfig) -> str:
    """What a method's study searches, one line per setting, with the untuned recipe's value."""
    method = METHODS.get(base.method)
    study_base = base
    lines = [f"{base.method} on {base.dataset}: what `lt-bench tune` searches (first trial: the recipe)"]
    for name, search in method.search_space().items():
        value = recipe_value(study_base, name) if name in CONFIG_FIELDS else None
        if value is None:
            value = base.method_options.get(name, method.options[name].default)
        about = "" if name in CONFIG_FIELDS else f"  ({method.options[name].about})"
        described = search.describe(value)
        lines.append(f"  {name:<24} {described}; recipe {value:g}{about}")
    return "\n".join(lines)


def run_studies(
    studies_to_run: list[Study], *, jobs: int, launcher: str, cluster: str | None, args: Any
) -> None:
    """Each study to its budget: here with `jobs` worker processes (CPU threads divided between
    them), or as `jobs` SLURM jobs (submitit, the `sweep` profiles) sharing its journal; then its best
    trial, printed."""
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    for study in studies_to_run:
        if launcher == "slurm":
            study = Study(
                study.base.replace(output=str(Path(study.base.output).resolve())),
                study.seeds,
                study.trials,
                study.sampler,
                study.pruner,
            )
            _on_slurm(study, jobs, cluster, args)
        else:
            _here(study, jobs)
        optuna_study = load_study(study)
        best = best_trial(study.describe(), study.base.output)
        values = " ".join(f"{name}={value:g}" for name, value in best["params"].items())
        print(
            f"{study.name}: {len(finished_trials(optuna_study))} trials finished; best trial "
            f"{best['number']} (val balanced accuracy {100 * best['value']:.1f}): {values}; "
            f"train it with: lt-bench run --protocol tuned --method {study.base.method} "
            f"--dataset {study.base.dataset} --trials {study.trials}"
        )


def _here(study: Study, jobs: int) -> None:
    """The study's workers in this process (one job) or in `jobs` processes."""
    if jobs == 1:
        work(study, study.base.threads)
        return
    import multiprocessing

    threads = max(1, study.base.threads // jobs)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=work, args=(study, threads, index)) for index in range(jobs)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    failed = [worker.exitcode for worker in workers if worker.exitcode]
    if failed:
        raise UserError(
            f"{len(failed)} of {jobs} tuning workers of {study.name} failed (exit {failed[0]}); "
            f"rerun the same command: finished trials are kept"
        )


class TuneJob:
    """The callable a SLURM job runs: one worker of a study."""

    def __call__(self, study: Study, worker: int) -> str:
        work(study, worker=worker)
        return study.name


def _on_slurm(study: Study, jobs: int, cluster: str | None, args: Any) -> None:
    """`jobs` SLURM jobs working on the study at once; waits for them."""
    import shlex
    import sys

    import submitit

    from lt_bench.launch.profiles import load_profile, resource_overrides
    from lt_bench.launch.slurm import slurm_folder

    resources = load_profile(cluster).resources(study.base.dataset, resource_overrides(args))
    logs = slurm_folder(study.base.output).resolve() / "logs"
    executor = submitit.AutoExecutor(
        folder=logs / "%j", cluster="slurm", slurm_python=shlex.quote(sys.executable)
    )
    executor.update_parameters(**resources.submitit_parameters())
    try:
        submitted = executor.map_array(TuneJob(), [study] * jobs, list(range(jobs)))
    except FileNotFoundError as error:
        raise UserError(
            f"cannot submit to SLURM ({error.filename} not found); run on a machine with SLURM's "
            f"sbatch, or pass --launcher local"
        ) from error
    print(f"{study.name}: {jobs} SLURM jobs {' '.join(job.job_id for job in submitted)}; logs in {logs}")
    for job in submitted:
        try:
            job.result()
        except submitit.core.utils.UncompletedJobError as error:
            raise UserError(
                f"SLURM job {job.job_id} of {study.name} failed ({str(error).splitlines()[0]}); see "
                f"{logs / job.job_id} and rerun the same command: finished trials are kept"
            ) from error
