"""Generated configs and command lines thrown at the harness: a clean run or a clean one-line error
(exit status 2), never an unhandled exception."""

from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lt_bench.cli import main
from lt_bench.config import RunConfig, resolve_config
from lt_bench.errors import UserError

NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70).map(float))
COUNTS = st.integers(-(2**70), 2**70)

CONFIG_VALUES = {
    "epochs": COUNTS, "batch_size": COUNTS, "lr": NUMBERS, "weight_decay": NUMBERS, "momentum": NUMBERS,
    "schedule": st.sampled_from(["cosine", "multistep", "linear", ""]), "warmup_epochs": COUNTS,
    "milestones": st.lists(COUNTS, max_size=3).map(tuple), "lr_decay": NUMBERS, "seed": COUNTS,
    "data_seed": COUNTS, "imbalance_ratio": NUMBERS,
    "knobs": st.dictionaries(st.text(max_size=5), NUMBERS, max_size=2), "checkpoint_seconds": NUMBERS,
}  # fmt: skip


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    method=st.sampled_from(["ce", "causal_tde", "causal-tde", ""]),
    dataset=st.sampled_from(["digits_lt", "mnist_lt", "cifar10_lt", "digits"]),
    overrides=st.fixed_dictionaries({}, optional=CONFIG_VALUES),
)
def test_generated_configs_resolve_or_raise_a_user_error(method, dataset, overrides):
    try:
        config = resolve_config(method, dataset, **overrides)
    except UserError as error:
        event("refused")
        assert "\n" not in str(error)
        return
    event("accepted")
    assert isinstance(config, RunConfig) and config.epochs >= 1 and config.batch_size >= 1


def _value(*choices: str) -> st.SearchStrategy[str]:
    return st.sampled_from(choices)


OPTIONS = {
    "--epochs": _value("-1", "0", "1", "two", "1.5"),
    "--batch-size": _value("0", "-8", "64", "240", "481", "100000", "1e3"),
    "--lr": _value("0.05", "0", "-1", "nan", "inf", "1e30", "fast"),
    "--weight-decay": _value("0", "5e-4", "-1", "inf"),
    "--momentum": _value("0", "0.9", "1", "1.5", "-0.1"),
    "--schedule": _value("cosine", "multistep", "step"),
    "--warmup-epochs": _value("0", "1", "5", "-1"),
    "--milestones": _value("1", "-1", "0", "x"),
    "--lr-decay": _value("0.1", "0", "-2", "nan"),
    "--imbalance-ratio": _value("1", "10", "0.5", "1e9", "nan", "-3", "ten"),
    "--knob": _value("alpha=1", "alpha=abc", "=3", "alpha", "beta=2", "alpha=inf", "alpha=1e300"),
    "--seed": _value("0", "1", "-1", str(2**63), "x"),
    "--data-seed": _value("0", "3", "-5", str(2**64)),
    "--device": _value("cpu", "cpu:0", "cuda:7", "quantum", ""),
    "--backbone": _value("lt_small_cnn", "resnet_18", ""),
    "--checkpoint-every": _value("0", "0.5", "-1", "nan"),
}
JUNK = st.text(max_size=8).filter(
    lambda token: not token.startswith("-h") and "--help"[: len(token)] != token
)


@st.composite
def command_lines(draw) -> list[str]:
    """A `run` command: known options with good and bad values, sometimes a stray token."""
    method = draw(_value("ce", "causal_tde", "logit_adjustment", "causal_tdee"))
    dataset = draw(_value("digits_lt", "digits", "imagenet_lt"))
    argv = ["run", "--method", method, "--dataset", dataset, "--epochs", "1", "--batch-size", "240"]
    for option in draw(st.lists(st.sampled_from(sorted(OPTIONS)), max_size=4, unique=True)):
        argv += [option, draw(OPTIONS[option])]
    if draw(st.booleans()):
        argv.insert(draw(st.integers(0, len(argv))), draw(JUNK))
    return argv


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    return tmp_path_factory.mktemp("property-results")


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(argv=command_lines())
def test_generated_command_lines_run_cleanly_or_fail_in_one_line(argv, output):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main([*argv, "--output", str(output)])
    err = stderr.getvalue()
    event(f"exit status {status}")
    assert "Traceback" not in err
    if status == 0:
        assert "top1" in stdout.getvalue() or "already finished" in stdout.getvalue()
        return
    assert status == 2, err
    errors = [line for line in err.splitlines() if line.startswith("lt-bench: error: ")]
    assert len(errors) == 1, err
