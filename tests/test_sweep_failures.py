"""A sweep goes on past a run that fails: the others run, the leaderboard is written, the failures are
listed at the end and the exit status says something failed."""

from __future__ import annotations

import json

from lt_bench.cli import main


def test_a_failed_run_does_not_stop_the_sweep(tmp_path, capsys):
    # At imbalance ratio 1000 digits_lt keeps no training image of classes 7, 8 and 9: CE trains, the
    # log-prior methods refuse the empty classes once the data is loaded.
    output = tmp_path / "results"
    argv = [*"sweep --methods logit_adjustment ce balanced_softmax --dataset digits_lt --epochs 1".split(),
            *"--imbalance-ratio 1000 --output".split(), str(output)]  # fmt: skip
    assert main(argv) == 2
    captured = capsys.readouterr()

    [record] = [json.loads(path.read_text()) for path in (output / "records").glob("*.json")]
    assert record["method"] == "ce" and record["status"] == "finished"
    board = (output / "leaderboard.md").read_text()
    assert "| ce " in board and "logit_adjustment" not in board
    assert board in captured.out

    *failures, last = captured.err.splitlines()
    assert [line.split(":")[1].split("-")[1] for line in failures] == ["logit_adjustment", "balanced_softmax"]
    for line in failures:
        assert line.startswith("failed: digits_lt-")
        assert line.endswith("class(es) 7, 8, 9 have no training images (log prior -inf): lower "
                             "--imbalance-ratio so every class keeps an image, or use a method without a "
                             "log prior (e.g. ce)")  # fmt: skip
    assert last.startswith("lt-bench: error: 2 of 3 runs failed (listed above)")

    assert main(argv) == 2  # the same command again: the finished run is kept, the failed ones retried
    out = capsys.readouterr().out
    assert f"{record['run_id']}: already finished" in out and out.count(": failed: ") == 2
