"""`lt-bench reproduce`: a paper's rows trained under the paper protocol, reported vs reproduced."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lt_bench.cli import main
from lt_bench.method import METHODS
from lt_bench.methods.causal_tde import CausalTDE
from lt_bench.reproduce import reported_rows
from tests.test_data_cifar import write_cifar10


def _table_rows(page: str) -> list[list[str]]:
    lines = [line for line in page.splitlines() if line.startswith("| ") and "---" not in line]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_reproduce_tde_on_cifar10_writes_reported_next_to_ours_and_then_only_collects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_cifar10(tmp_path / "data")
    args = ["reproduce", "tde", "--datasets", "cifar10_lt", "--epochs", "3", "--batch-size", "16",
            "--backbone", "lt_small_cnn", "--data-root", str(tmp_path / "data"),
            "--output", str(tmp_path / "out"), "--num-workers", "0", "--seeds", "0"]  # fmt: skip
    assert main(args) == 0
    first = capsys.readouterr().out
    page = (tmp_path / "out" / "reproduction" / "tde.md").read_text()
    header, *rows = _table_rows(page)
    column = {name: index for index, name in enumerate(header)}
    expected = {
        (row.dataset, row.imbalance_ratio, row.top1)
        for method in ("causal_tde", "deconfound")
        for row in reported_rows(METHODS.get(method))
        if row.dataset == "cifar10_lt"
    }
    assert len(rows) == len(expected) == 6  # IR 100, 50, 10 for De-confound-TDE and De-confound
    tde_ir100 = next(
        r for r in rows if r[column["Method"]] == "causal_tde" and r[column["Dataset"]].endswith("IR 100")
    )
    assert tde_ir100[column["Top-1 reported"]] == "80.6"
    assert re.fullmatch(r"\d+\.\d", tde_ir100[column["Top-1 ours"]])  # one seed: no ± std
    assert re.fullmatch(r"[+-]\d+\.\d", tde_ir100[column["Δ"]])
    assert tde_ir100[column["Seeds"]] == "1/1"
    notes = dict(re.findall(r"^(\d+)\. (.+)$", page, re.MULTILINE))
    deviations = "; ".join(notes[number] for number in tde_ir100[column["Deviations"]].split(", "))
    assert "epochs 3 (paper 200)" in deviations and "batch_size 16 (paper 256)" in deviations
    assert "backbone lt_small_cnn (paper resnet32_bbn)" in deviations  # a small net keeps the test fast
    assert first.count("top1") == 6  # six runs trained

    assert main(args) == 0  # the second time only collects
    second = capsys.readouterr().out
    assert second.count("already finished") == 6 and "top1 " not in second.split("# Reproducing")[0]
    assert (tmp_path / "out" / "reproduction" / "tde.md").read_text() == page


def test_reproduce_names_the_papers_and_refuses_an_unknown_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--list"]) == 0
    listing = capsys.readouterr().out
    for key in ("tde", "ldam_drw", "decoupling", "logit_adjustment", "balanced_softmax", "lift"):
        assert re.search(rf"^{key}\s", listing, re.MULTILINE)
    assert main(["reproduce", "tdee"]) == 2
    assert "no paper 'tdee' to reproduce" in capsys.readouterr().err
    assert reported_rows(CausalTDE)  # the rows live with the method
