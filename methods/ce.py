"""Cross-entropy with a linear head and instance-balanced sampling: the baseline every table starts from."""

from lt_bench.method import METHODS, Method


@METHODS.register("ce")
class CrossEntropy(Method):
    """Plain softmax cross-entropy on a linear head (the 'Baseline' row of every long-tail paper)."""

    description = "cross-entropy with a linear head (the baseline)"
