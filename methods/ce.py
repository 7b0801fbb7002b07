"""Cross-entropy with a linear head and instance-balanced sampling: the baseline every table starts from."""

from lt_bench.method import METHODS, Method
from lt_bench.methods.decoupling import DECOUPLING_PAPER, JOINT_RECIPES, README_TABLE
from lt_bench.protocol import Reported


@METHODS.register("ce")
class CrossEntropy(Method):
    """Plain softmax cross-entropy on a linear head (the 'Baseline' row of every long-tail paper)."""

    description = "cross-entropy with a linear head (the baseline)"
    supports_instance_segmentation = True  # softmax Mask R-CNN: the base hooks
    # Its paper protocol is decoupling's stage 1 ("Joint"), which cRT, LWS and τ-norm continue.
    paper = DECOUPLING_PAPER
    paper_recipes = JOINT_RECIPES
    reported = (
        Reported("imagenet_lt", None, 44.4, 65.9, 37.5, 7.7, backbone="ResNeXt-50", table=README_TABLE),
    )
