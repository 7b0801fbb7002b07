"""`lt-bench tune`: method options, search spaces, studies that survive kill -9, honest validation
and `--protocol tuned` — real training on small real data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest

from lt_bench.cli import main
from lt_bench.config import resolve_config
from tests.test_data_cifar import _dump, write_cifar10

TUNE_MNIST = "tune --methods ce weight_balancing --dataset mnist_lt --trials 4 --epochs 1 --threads 1".split()
COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED


def _trials(output: Path, method: str) -> list[optuna.trial.FrozenTrial]:
    """Every trial of the one study of `method` under `output`, read from its journal file."""
    (described,) = (output / "tuning").glob(f"*-{method}-*trials-*/study.json")
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(described.parent / "journal.log"))
    )
    name = json.loads(described.read_text())["name"]
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def test_options_are_declared_and_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    plain = resolve_config("focal", "digits_lt")
    assert "method_options" not in plain.identity()  # runs from before options keep their ids
    assert resolve_config("focal", "digits_lt", method_options={"gamma": 2.0}).run_id != plain.run_id
    assert main("run --method focal --dataset digits_lt --option beta=0.9".split()) == 2
    assert capsys.readouterr().err.strip() == (
        "lt-bench: error: method 'focal' has no option 'beta' (its options: gamma)"
    )
    assert main("run --method focal --dataset digits_lt --option gamma=9".split()) == 2
    assert "--option gamma must be in [0, 5]" in capsys.readouterr().err
    assert main("tune --method weight_balancing --dataset mnist_lt --show-space".split()) == 0
    shown = capsys.readouterr().out
    assert "lr                       log-uniform [0.005, 0.5] (recipe 0.05 × [0.1, 10]); recipe 0.05" in shown
    assert "second_stage_weight_decay log-uniform [0.0001, 1]; recipe 0.1" in shown  # a RunConfig field
    assert "\n  weight_decay " not in shown  # its stages' own decays replace the shared one


def test_tune_refuses_a_validation_split_that_is_the_test_split(tmp_path: Path, capsys) -> None:
    code = main(["tune", "--methods", "ce", "--dataset", "inat2018", "--trials", "2",
                 "--data-root", str(tmp_path), "--output", str(tmp_path / "out")])  # fmt: skip
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("lt-bench: error: inat2018's validation split is its test split")
    assert "\n" not in error


def test_run_protocol_tuned_without_a_study_names_the_tune_command(tmp_path: Path, capsys) -> None:
    code = main(["run", "--protocol", "tuned", "--method", "ce", "--dataset", "digits_lt",
                 "--output", str(tmp_path)])  # fmt: skip
    assert code == 2
    assert "run `lt-bench tune --methods ce --dataset digits_lt --trials N`" in capsys.readouterr().err


def test_a_study_killed_mid_way_resumes_to_exactly_its_trials(tmp_path: Path) -> None:
    output = tmp_path / "results"
    command = [sys.executable, "-m", "lt_bench.cli", *TUNE_MNIST, "--output", str(output)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command, env=environment, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:  # kill once ce has finished 2 trials
        if (output / "tuning").is_dir() and any((output / "tuning").glob("*-ce-*/journal.log")):
            try:
                if sum(t.state == COMPLETE for t in _trials(output, "ce")) >= 2:
                    break
            except KeyError:  # the journal holds no study yet
                pass
        time.sleep(0.2)
    assert process.poll() is None, "the study finished before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    assert main([*TUNE_MNIST, "--output", str(output)]) == 0
    for method in ("ce", "weight_balancing"):
        trials = _trials(output, method)
        finished = [t for t in trials if t.state in (COMPLETE, PRUNED)]
        assert len(finished) == 4
        assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
        assert finished[0].user_attrs["recipe"] and finished[0].params["lr"] == 0.05
        values = [tuple(sorted(t.params.items())) for t in finished]
        assert len(set(values)) == 4  # no values trained twice
        study_folder = next((output / "tuning").glob(f"*-{method}-*"))
        runs = sorted((study_folder / "runs").glob(f"*-{method}-*"))
        assert len(runs) == 4  # one run per trial: none trained again from scratch
        for run in runs:
            epochs = [json.loads(line)["epoch"] for line in (run / "log.jsonl").read_text().splitlines()]
            assert epochs == list(range(1, len(epochs) + 1))  # each epoch once (stage 2 runs its own 10)
        records = [json.loads(p.read_text()) for p in (study_folder / "records").glob(f"*-{method}-*.json")]
        assert sorted(r["trial"]["number"] for r in records) == sorted(t.number for t in finished)
    assert not (output / "records").exists()  # trials stay off the plain leaderboard


def _cifar_root(root: Path, permute_test_labels: bool) -> Path:
    write_cifar10(root)
    if permute_test_labels:
        path = root / "cifar-10-batches-py" / "test_batch"
        with path.open("rb") as handle:
            import pickle

            batch = pickle.load(handle)
        batch["labels"] = np.random.default_rng(7).permutation(batch["labels"]).tolist()
        _dump(path, batch)
    return root


CIFAR_OPTIONS = "--dataset cifar10_lt --backbone lt_small_cnn --epochs 1 --warmup-epochs 0 --batch-size 32 "
CIFAR_OPTIONS += "--imbalance-ratio 10 --threads 1 --milestones"  # none: 160, 180 of 200 collapse at 1 epoch


def test_tuning_never_reads_test_labels_and_protocol_tuned_trains_the_best_trial(tmp_path: Path) -> None:
    studies = []
    for permuted in (False, True):
        root = _cifar_root(tmp_path / f"data-{permuted}", permuted)
        output = tmp_path / f"results-{permuted}"
        tune = f"tune --methods ce --trials 3 --sampler random {CIFAR_OPTIONS}".split()
        assert main([*tune, "--data-root", str(root), "--output", str(output)]) == 0
        trials = _trials(output, "ce")
        studies.append([(t.number, t.params, t.value) for t in trials])
        record = json.loads(
            next((next((output / "tuning").iterdir()) / "records").glob("*.json")).read_text()
        )
        assert "cifar10_lt's validation split, apart from its test split" in record["trial"]["validation"]
        assert record["trial"]["objective"] == "validation balanced accuracy, mean over the tuning seeds"
    assert studies[0] == studies[1]  # the same study, so the same best trial

    best = max(studies[1], key=lambda trial: (trial[2], -trial[0]))
    run = f"run --method ce --protocol tuned {CIFAR_OPTIONS}".split()
    root, output = tmp_path / "data-True", tmp_path / "results-True"
    assert main([*run, "--data-root", str(root), "--output", str(output)]) == 0
    (record_path,) = (output / "records").glob("*.json")
    record = json.loads(record_path.read_text())
    assert record["config"]["protocol"] == "tuned"
    assert record["config"]["lr"] == best[1]["lr"]
    assert record["config"]["weight_decay"] == best[1]["weight_decay"]
    tuning = record["config"]["tuning"]
    assert (tuning["best_trial"], tuning["best_validation_score"]) == (best[0], best[2])
    assert tuning["budget"] == {"trials": 3, "epochs": 1, "seeds": [0]}
    assert main(["leaderboard", "--output", str(output)]) == 0
    board = (output / "leaderboard.md").read_text()
    assert "tuned: 3 trials per method (1 epochs × 1 seed)" in board
    assert main(["report", "--dataset", "cifar10_lt", "--output", str(output)]) == 0
    page = (output / "report" / "cifar10_lt.md").read_text()
    assert "### Tuning" in page and "### Validation score by trial" in page
    chosen = f"lr={best[1]['lr']:.3g}, weight_decay={best[1]['weight_decay']:.3g}"
    assert chosen in page
    assert list((output / "report" / "cifar10_lt").glob("*-trials.png"))


def test_the_median_pruner_stops_trials_on_their_validation_curve_and_records_them(tmp_path: Path) -> None:
    output = tmp_path / "results"
    tune = "tune --methods ce --dataset digits_lt --trials 8 --epochs 3 --val-every 1 --sampler random"
    assert main([*tune.split(), "--threads", "1", "--output", str(output)]) == 0
    trials = _trials(output, "ce")
    assert sum(t.state in (COMPLETE, PRUNED) for t in trials) == 8
    pruned = [t for t in trials if t.state == PRUNED]
    assert pruned, "no trial was pruned"
    study_folder = next((output / "tuning").iterdir())
    records = [json.loads(p.read_text()) for p in (study_folder / "records").glob("*.json")]
    pruned_records = [r for r in records if r["status"] == "pruned"]
    assert sorted(r["trial"]["number"] for r in pruned_records) == [t.number for t in pruned]
    for record in pruned_records:  # stopped before the last epoch, with the curve it reached
        assert record["error"].startswith("pruned at epoch ")
        assert len(record["curve"]) < 3
