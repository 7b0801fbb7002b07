"""The method contract: every long-tail method is a `Method` subclass that overrides what it changes.

The core calls these hooks in this order:

    method = MethodClass(context)
    head = method.build_head()                       # (a) classifier on the backbone's features
    [second stage only] method.prepare_second_stage(model)   # (f) after loading the first stage
                        trained on `second_stage`'s own schedule  # (f) not the first stage's
    each epoch:  method.on_epoch_start(epoch, lr)            # (d) e.g. DRW's switch
                 order = method.sample_order(labels, gen)    # (c) the epoch's index stream
        [mixing] second = method.mixing_sample_order(labels, gen)  # (i) e.g. CMO's minority stream
        each step: mixed = method.mix_batch(images, targets, second_batch, epoch, rng)  # (i) or None
                   method.on_train_features(features)       # (d) e.g. TDE's moving average
                   loss = method.loss_with_features(logits, features, targets)  # (b), (j): all views
                       or method.mixed_loss(logits, mixed)  # (i) when the batch was mixed
                   optimizer.step(); method.on_step_end(model)  # (k) e.g. MaxNorm projection
                   method.combine_experts(logits)            # (l) the prediction the accuracy counts
    evaluation:  method.inference_logits(head, features, **knobs)  # (e) knobs picked on val
    [adapts_at_test only] method.adapt_to_test(head, view, other_view, gen)  # (m) per test set

(e) `test_time_knob_ranges` declares the values each knob may take (inclusive bounds); a `--knob`
outside them is refused before anything runs. Unlisted knobs are unbounded.

(f) A second stage declares its own schedule as data, `second_stage` (from its official code): its
epochs, whatever the first stage's (`--epochs` scales the first stage only), its lr at a reference
batch (scaled linearly to the run's batch), weight decay and schedule. A method with a `first_stage`
and no `second_stage` trains nothing after loading it (post-hoc: τ-norm, post-hoc logit adjustment).
Method state that must survive a restart lives in `state_dict()` / `load_state_dict()`.
(g) `paper`, `paper_recipes` and `reported` are data: the method's paper, how its official code
trains it per dataset (used under `--protocol paper`) and the numbers its paper reports.
(h) `head_from_features` methods set their head from the training set's features before training.
(i) Batch mixing: `mix_batch` may replace a step's images by a mixture (CutMix, mixup) whose loss is
`mixed_loss`; a method that mixes in a second batch draws it from its own `mixing_sample_order`.
(j) `views` > 1 feeds each image that many times, each with its own augmentation draw, in one forward
pass; `loss_with_features` sees every view's logits and features (BCL's contrastive branch). A method
may not both mix batches and take several views: defining one that does raises TypeError.
(k) `weight_decay` replaces the recipe's weight decay of the method's own (first) stage (a method
whose authors tuned it); `parameter_groups` splits the trainable parameters into optimizer groups with
their own weight decay; `on_step_end` runs after every optimizer step (a weight constraint).
Every random draw of these hooks comes from the generators the core passes, seeded from the run's
seed, stage, epoch and step, so a resumed run draws the same values.
(l) A multi-expert head returns logits [batch, experts, classes]: `loss` receives them whole, and
`combine_experts` turns them into the [batch, classes] logits of one prediction.
(n) `options` are the method's own constants (focal γ, LA τ, …) with their paper values and the
range tuning searches; the method reads each with `option(name)`, which `--option NAME=VALUE` sets.
`search_space()` is what `lt-bench tune` searches: the shared lr × weight decay and every option; a
plugin may override it (e.g. to add a RunConfig field such as a second stage's lr).
(o) Instance segmentation (`lt_bench.detection`, Mask R-CNN): a method with
`supports_instance_segmentation` supplies the box head's classifier on RoI features (column 0 of its
output is background, 1…C the categories), `roi_loss` on the sampled RoIs, `on_roi_features` (state
from the RoI features and labels, e.g. TDE's foreground mean), `roi_scores` (the detection scores,
with the knobs of `test_time_knobs` picked on validation AP) and `image_repeat_factors` (the sampler
over training images). There `context.num_classes` counts the categories and `context.class_counts`
the training images of each.
(m) `adapts_at_test` methods learn test-time knobs from unlabelled test images, never their labels:
per test set (the test split, each shifted set of `lt_bench.test_shift`), from the backbone features
of two augmented views of its images; `inference_logits` on that set then also takes those knobs.
(n) What a method needs of the run: `uses_milestones` says its epoch events follow the learning-rate
milestones (DRW's switch), so `--milestones` is checked against the epochs under any schedule; and
`image_needs()` says why it must see images at every step (mixing, several views, or
`needs_images_every_step`), so `--finetune linear`, which trains on features cached once, is refused.
A step's loss must be a scalar floating-point tensor (`checked_loss`); a plugin that breaks a rule,
or whose hook raises, is named with its package in one line (`lt_bench.plugin_errors`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lt_bench.data import samplers
from lt_bench.protocol import Paper, PaperRecipe, Reported, ReportedDetection
from lt_bench.registry import Registry
from lt_bench.search_space import SHARED_SEARCH_SPACE, Option, Range, option_ranges


@dataclass(frozen=True)
class MethodContext:
    """What a method may know when it is built."""

    dataset: str
    num_classes: int
    class_counts: tuple[int, ...]  # training images per class, ordered by class index
    feature_dim: int
    epochs: int  # epochs of the stage this method trains
    steps_per_epoch: int
    base_lr: float
    lr_milestones: tuple[int, ...] = ()  # epochs where a multi-step schedule drops the rate
    protocol: str = "shared"  # "shared" (the dataset's recipe) or "paper" (the method's own recipe)
    method_options: Mapping[str, float] = field(default_factory=dict)  # (n) `--option` values given


@dataclass(frozen=True)
class SecondStage:
    """A second stage's own schedule, as its official code trains it: `epochs` (never scaled with the
    first stage's), SGD at `lr` for a global batch of `batch_size_for_lr` (scaled linearly to the run's
    batch, Goyal et al. 2017), `weight_decay`, and `schedule` without warm-up."""

    epochs: int
    lr: float
    batch_size_for_lr: int
    weight_decay: float
    schedule: str = "cosine"


@dataclass(frozen=True)
class MixedBatch:
    """A step's images after mixing: `share` (λ) of each is the first batch's image of class `targets`,
    the rest the other image's, of class `other_targets`."""

    images: torch.Tensor
    targets: torch.Tensor
    other_targets: torch.Tensor
    share: float


class Method:
    """Plain cross-entropy on a linear head, instance-balanced sampling, no inference transform.

    Subclasses override only the hooks their paper changes.
    """

    description: ClassVar[str] = ""
    first_stage: ClassVar[str | None] = None  # (f) the method whose finished run this one continues
    second_stage: ClassVar[SecondStage | None] = None  # (f) how it trains after that run; None: nothing
    # (k) the weight decay its (first) stage trains with instead of the recipe's; None: the recipe's
    weight_decay: ClassVar[float | None] = None
    # (g) the method's paper: its recipe per dataset (the `paper` protocol) and its published rows
    paper: ClassVar[Paper | None] = None
    paper_recipes: ClassVar[Mapping[str, PaperRecipe]] = {}
    reported: ClassVar[tuple[Reported, ...]] = ()
    # (e) each test-time knob's valid values, inclusive: {"alpha": (0.0, math.inf)}; unlisted: unbounded
    test_time_knob_ranges: ClassVar[Mapping[str, tuple[float, float]]] = {}
    # (n) the method's tunable constants: name → paper value and search range
    options: ClassVar[Mapping[str, Option]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.views > 1 and cls.mix_batch is not Method.mix_batch:
            raise TypeError(
                f"{cls.__qualname__} sets views = {cls.views} and overrides mix_batch: batch mixing "
                "works on one view per image; mix one view or drop the extra views"
            )

    def __init__(self, context: MethodContext) -> None:
        self.context = context

    # (n) options and the search space
    def option(self, name: str) -> float:
        """The value of option `name`: as `--option` set it, else the paper's."""
        return float(self.context.method_options.get(name, type(self).options[name].default))

    @classmethod
    def search_space(cls) -> dict[str, Range]:
        """What `lt-bench tune` searches: RunConfig fields (lr, weight_decay, …) and option names."""
        return {**SHARED_SEARCH_SPACE, **option_ranges(cls.options)}

    # (a) the head
    def build_head(self) -> nn.Module:
        return nn.Linear(self.context.feature_dim, self.context.num_classes)

    # (b) the loss
    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)

    def loss_with_features(
        self, logits: torch.Tensor, features: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """The training loss given the backbone features too: logits [V·B, C] and fp32 features [V·B, D]
        of the `views` (V) views, view after view, for targets [B]. Default: `loss` over every view."""
        return self.loss(logits, targets.repeat(len(logits) // len(targets)))

    # (c) the sampler
    def sample_order(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The epoch's global index stream over the training set."""
        return samplers.instance_balanced(labels, generator)

    # (d) state updated during training
    def on_epoch_start(self, epoch: int, lr: float) -> None:
        """Called before each training epoch (0-based) with its learning rate."""

    def on_train_features(self, features: torch.Tensor) -> None:
        """Called every training step with the detached backbone features, before the loss.

        Under DDP the features are this process's shard of the global batch (see lt_bench.distributed).
        """

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    # (i) batch mixing
    def mixing_sample_order(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor | None:
        """The epoch's index stream of a second batch per step for `mix_batch`; None: no second batch."""
        return None

    def mix_batch(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        second: tuple[torch.Tensor, torch.Tensor] | None,
        epoch: int,
        rng: np.random.Generator,
    ) -> MixedBatch | None:
        """The step's mixed images, or None to train on `images` as they are; `second` is the batch drawn
        from `mixing_sample_order` (its images, targets), `rng` this step's own random stream."""
        return None

    def mixed_loss(self, logits: torch.Tensor, mixed: MixedBatch) -> torch.Tensor:
        """λ·loss(logits, y_a) + (1 − λ)·loss(logits, y_b), the loss of CutMix and mixup."""
        return mixed.share * self.loss(logits, mixed.targets) + (1.0 - mixed.share) * self.loss(
            logits, mixed.other_targets
        )

    # (j) several augmented views of each image per step
    views: ClassVar[int] = 1

    # (n) what the method needs of the run
    uses_milestones: ClassVar[bool] = False  # True: an epoch event sits at the lr milestones
    needs_images_every_step: ClassVar[bool] = False  # True: a hook works on the step's images

    @classmethod
    def image_needs(cls) -> str | None:
        """Why the method must see images at every training step, or None when features will do."""
        if cls.mix_batch is not Method.mix_batch:
            return "mixes the images of each batch"
        if cls.views > 1:
            return f"trains on {cls.views} augmented views of each image"
        if cls.needs_images_every_step:
            return "works on the images at every step"
        return None

    # (k) the optimizer
    def parameter_groups(self, model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        """The optimizer's groups of trainable parameters, each {"params": [...]} and optionally its own
        "weight_decay" (`weight_decay` is the recipe's). Default: one group at the recipe's decay."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def on_step_end(self, model: nn.Module) -> None:
        """Called after every optimizer step, without gradients (e.g. a projection of the head's weights)."""

    # (e) inference
    def test_time_knobs(self) -> dict[str, tuple[float, ...]]:
        """Each knob's candidate values; one value means fixed, several are searched on validation."""
        return {}

    def inference_logits(self, head: nn.Module, features: torch.Tensor, **knobs: float) -> torch.Tensor:
        return self.combine_experts(head(features))

    # (l) several experts
    def combine_experts(self, head_output: torch.Tensor) -> torch.Tensor:
        """The [batch, classes] logits of one prediction from the head's output (a multi-expert head's
        [batch, experts, classes]); a single head's logits pass unchanged."""
        return head_output

    # (m) test-time adaptation on unlabelled test images
    adapts_at_test: ClassVar[bool] = False  # True: the runner calls `adapt_to_test` per test set

    def adapt_to_test(
        self, head: nn.Module, view: torch.Tensor, other_view: torch.Tensor, generator: torch.Generator
    ) -> dict[str, float]:
        """Knobs for `inference_logits` learnt from the eval-mode backbone features of two augmented
        views of the same unlabelled test images (row i of each: image i); `generator` orders them."""
        raise NotImplementedError(f"{type(self).__name__} sets adapts_at_test without adapt_to_test")

    # (n) instance segmentation: the box head's classifier, its loss, its scores, the image sampler
    supports_instance_segmentation: ClassVar[bool] = False
    reported_detection: ClassVar[tuple[ReportedDetection, ...]] = ()  # (g) the paper's LVIS rows

    def build_box_classifier(self) -> nn.Module:
        """RoI features [R, D] → logits [R, C + 1]: background in column 0, the categories after it."""
        return nn.Linear(self.context.feature_dim, self.context.num_classes + 1)

    def roi_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The classification loss of the sampled RoIs (labels: 0 background, 1…C the categories)."""
        return F.cross_entropy(logits, labels)

    def on_roi_features(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Called every training step with the detached box-head features of the sampled RoIs."""

    def roi_scores(self, classifier: nn.Module, features: torch.Tensor, **knobs: float) -> torch.Tensor:
        """Detection scores [R, C + 1] (column 0 background, not ranked) from the RoI features."""
        return F.softmax(classifier(features), dim=1)

    def image_repeat_factors(self, image_categories: list[set[int]]) -> list[float] | None:
        """How often each training image (given its categories 1…C) is drawn per epoch; None: once."""
        return None

    # (h) a head initialised from the training data
    head_from_features: ClassVar[bool] = False  # True: the runner calls `initialise_head` before training

    def initialise_head(self, head: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> str:
        """Set `head` from the eval-mode backbone features of every training image (no augmentation);
        returns how, for the record (e.g. "class means")."""
        raise NotImplementedError(f"{type(self).__name__} sets head_from_features without initialise_head")

    # (f) second stage
    def prepare_second_stage(self, model: nn.Module) -> None:
        """Adjust the first stage's model (re-initialise, freeze) before the second stage trains."""


LOSS_RULE = "the training loss is a scalar floating-point tensor"


class ContractViolation(TypeError):
    """A hook returned what the contract rules out; `rule` is the rule it broke."""

    def __init__(self, hook: str, rule: str, got: str) -> None:
        super().__init__(f"{hook} returned {got}")
        self.hook = hook
        self.rule = rule


def checked_loss(loss: object) -> torch.Tensor:
    """A step's loss (b), (i), as the contract requires it; a ContractViolation otherwise."""
    if isinstance(loss, torch.Tensor) and loss.ndim == 0 and loss.is_floating_point():
        return loss
    if isinstance(loss, torch.Tensor):
        got = f"a tensor of shape {list(loss.shape)} and dtype {loss.dtype}"
    else:
        got = f"a {type(loss).__name__}"
    raise ContractViolation("its loss", LOSS_RULE, got)


METHOD_ENTRY_POINTS = "lt_bench.methods"  # the entry-point group of installed method plugins
METHODS: Registry[type[Method]] = Registry(
    "method", builtin_package="lt_bench.methods", entry_point_group=METHOD_ENTRY_POINTS, base=Method
)
