"""A method from an installed distribution's `lt_bench.methods` entry point runs like a built-in.

The distribution is simulated for real: a module and a `*.dist-info` folder with `entry_points.txt`
on PYTHONPATH, which is exactly what `pip install` leaves in site-packages.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
PLUGIN_MODULE = '''
"""Cross-entropy with label smoothing: a third-party lt-bench method."""

import torch.nn.functional as F

from lt_bench.method import Method


class LabelSmoothingCE(Method):
    """Cross-entropy against targets smoothed by 0.1 (Szegedy et al., CVPR 2016)."""

    description = "label-smoothed cross-entropy (demo plugin)"

    def loss(self, logits, targets):
        return F.cross_entropy(logits, targets, label_smoothing=0.1)
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    (site / "ltb_smoothing.py").write_text(PLUGIN_MODULE)
    dist_info = site / "ltb_smoothing-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: ltb-smoothing\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[lt_bench.methods]\nlabel_smoothing = ltb_smoothing:LabelSmoothingCE\n"
    )
    return site


def python(args: list[str], site: Path, cwd: Path = REPOSITORY) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd
    )


def test_installed_plugin_is_listed_and_runs_through_the_cli(plugin_path, tmp_path):
    listing = python(["-m", "lt_bench.cli", "list", "methods"], plugin_path)
    assert listing.returncode == 0, listing.stderr
    assert "label_smoothing  " in listing.stdout and "demo plugin" in listing.stdout

    output = tmp_path / "results"
    result = python(
        [
            "-m",
            "lt_bench.cli",
            "run",
            "--method",
            "label_smoothing",
            "--dataset",
            "digits_lt",
            "--epochs",
            "1",
            "--output",
            str(output),
        ],
        plugin_path,
    )
    assert result.returncode == 0, result.stderr
    (record_file,) = (output / "records").glob("*.json")
    record = json.loads(record_file.read_text())
    assert record["method"] == "label_smoothing" and record["status"] == "finished"
    assert 0.0 <= record["metrics"]["test"]["top1"] <= 1.0


def test_installed_plugin_gets_the_conformance_suite_for_free(plugin_path):
    result = python(
        [
            "-m",
            "pytest",
            "-o",
            "addopts=",
            "-v",
            "-p",
            "no:cacheprovider",
            str(REPOSITORY / "tests" / "test_conformance.py"),
            "-k",
            "label_smoothing",
        ],
        plugin_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = [line for line in result.stdout.splitlines() if "[label_smoothing] PASSED" in line]
    suite = (REPOSITORY / "tests" / "test_conformance.py").read_text()
    assert len(passed) == suite.count("\ndef test_") >= 3, result.stdout  # every conformance test


def _install(site: Path, package: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """What `pip install` of `package` would leave in `site`: its modules and its dist-info folder."""
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)
    dist_info = site / f"{package.replace('-', '_')}-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[lt_bench.methods]\n{lines}")


@pytest.fixture(scope="module")
def faulty_plugins_path(tmp_path_factory) -> Path:
    """Beside the working demo plugin: one whose import fails, one that is not a Method, a name that two
    packages declare, and one that takes a built-in's name."""
    site = tmp_path_factory.mktemp("faulty-site")
    _install(site, "ltb-smoothing", {"ltb_smoothing": PLUGIN_MODULE},
             {"label_smoothing": "ltb_smoothing:LabelSmoothingCE"})  # fmt: skip
    _install(site, "ltb-broken", {"ltb_broken": "import ltb_no_such_dependency\n"},
             {"broken": "ltb_broken:Method"})  # fmt: skip
    _install(site, "ltb-not-a-method", {"ltb_function": "def focal_loss(logits, targets):\n    return 0\n"},
             {"not_a_method": "ltb_function:focal_loss"})  # fmt: skip
    twin = "from lt_bench.method import Method\n\nclass Twin(Method):\n    '''A twin.'''\n"
    _install(site, "ltb-one", {"ltb_one": twin}, {"twin": "ltb_one:Twin"})
    _install(site, "ltb-two", {"ltb_two": twin}, {"twin": "ltb_two:Twin", "ce": "ltb_two:Twin"})
    return site


def test_unusable_plugins_are_named_in_warnings_and_every_other_method_works(
    faulty_plugins_path, monkeypatch
):
    from lt_bench.errors import UserError
    from lt_bench.method import Method
    from lt_bench.registry import Registry

    monkeypatch.syspath_prepend(str(faulty_plugins_path))
    registry: Registry[type[Method]] = Registry("method", entry_point_group="lt_bench.methods", base=Method)
    with pytest.warns(UserWarning) as caught:
        names = registry.names()
    assert "label_smoothing" in names and not {"broken", "not_a_method", "twin"} & set(names)
    assert registry.get("label_smoothing").__name__ == "LabelSmoothingCE"
    warned = "\n".join(str(warning.message) for warning in caught)

    expected = {
        "broken": "method plugin 'broken' from the package ltb-broken (ltb_broken:Method) failed to import "
        "(ModuleNotFoundError: No module named 'ltb_no_such_dependency'); "
        "fix or uninstall the package ltb-broken",
        "not_a_method": "method plugin 'not_a_method' from the package ltb-not-a-method "
        "(ltb_function:focal_loss) is ltb_function.focal_loss, not a subclass of lt_bench.method.Method; "
        "fix or uninstall the package ltb-not-a-method",
        "twin": "method plugin 'twin' is installed twice, by the package ltb-one (ltb_one:Twin) and by the "
        "package ltb-two (ltb_two:Twin); uninstall one of those packages",
    }
    for name, message in expected.items():
        assert message in warned
        with pytest.raises(UserError) as error:
            registry.get(name)
        assert str(error.value) == message


def test_the_cli_lists_and_runs_around_unusable_plugins(faulty_plugins_path, tmp_path):
    listing = python(["-m", "lt_bench.cli", "list", "methods"], faulty_plugins_path)
    assert listing.returncode == 0, listing.stderr
    listed = {line.split()[0] for line in listing.stdout.splitlines()}
    assert {"ce", "causal_tde", "label_smoothing"} <= listed and not {"broken", "twin"} & listed
    warnings = listing.stderr.splitlines()
    assert len(warnings) == 4 and all(
        line.startswith("lt-bench: warning: method plugin ") for line in warnings
    )
    assert any(
        "'ce' from the package ltb-two (ltb_two:Twin) is ignored: 'ce' is a built-in" in w for w in warnings
    )

    ran = python(["-m", "lt_bench.cli", "run", "--method", "broken", "--dataset", "digits_lt",
                  "--output", str(tmp_path)], faulty_plugins_path)  # fmt: skip
    assert ran.returncode == 2
    assert ran.stderr.splitlines()[-1].startswith(
        "lt-bench: error: method plugin 'broken' from the package ltb-broken"
    )
    assert "Traceback" not in ran.stderr and not (tmp_path / "records").exists()
