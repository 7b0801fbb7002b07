"""`lt-bench list` and `--version`: filtered listings, and a reader that stops early is no error."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from lt_bench.cli import main

LT_BENCH = str(Path(sys.executable).with_name("lt-bench"))


@pytest.mark.parametrize("what", ["methods", "datasets", "backbones"])
def test_a_pipe_closed_after_the_first_line_ends_the_listing_quietly(what):
    piped = subprocess.run(f"'{LT_BENCH}' list {what} | head -1", shell=True, capture_output=True, text=True)
    assert piped.returncode == 0 and len(piped.stdout.splitlines()) == 1
    assert piped.stderr == ""


def test_a_pipe_closed_before_anything_is_written_ends_with_status_141_and_no_traceback():
    process = subprocess.Popen(
        [LT_BENCH, "list", "backbones"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    process.stdout.close()  # the reader is gone before lt-bench has printed a line
    errors = process.stderr.read()
    assert process.wait(timeout=120) == 141
    assert errors == ""


@pytest.mark.parametrize(
    ("what", "pattern", "names"),
    [
        ("methods", "ldam*", ["ldam", "ldam_drw"]),
        ("methods", "*tde", ["causal_tde"]),
        ("datasets", "cifar*", ["cifar100_lt", "cifar10_lt"]),
        ("backbones", "resnet32_*", ["resnet32_bbn", "resnet32_cifar"]),
    ],
)
def test_a_pattern_filters_the_listing(what, pattern, names, capsys):
    assert main(["list", what, pattern]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == names


def test_a_pattern_that_matches_nothing_is_one_line(capsys):
    assert main(["list", "datasets", "imagenet1k*"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == "lt-bench: error: no datasets match 'imagenet1k*'; `lt-bench list datasets` names them all"


def test_version_names_the_installed_package():
    shown = subprocess.run([LT_BENCH, "--version"], capture_output=True, text=True, env=dict(os.environ))
    assert shown.returncode == 0 and shown.stdout == f"lt-bench {version('lt-bench')}\n"
