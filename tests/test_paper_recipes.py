"""Paper recipes and reported rows, the data every method file declares next to its math.

Each recipe's fields are pinned to the official config, its learning rates (through
`lt_bench.schedule.learning_rate`) to the official scheduler's per-epoch rates worked out from that
scheduler's rule, and the published rows to the papers' and READMEs' tables.
"""

import bisect
import dataclasses
import math

import pytest

from lt_bench.config import RunConfig, resolve_config
from lt_bench.data.base import DATASETS
from lt_bench.method import METHODS
from lt_bench.schedule import learning_rate

SETTABLE = {field.name for field in dataclasses.fields(RunConfig)} - {"method", "dataset", "protocol"}
RECIPES = [(name, dataset) for name, method in METHODS.items() for dataset in method.paper_recipes]
PAPER_OF = {
    "causal_tde": "tde",
    "deconfound": "tde",
    "ldam": "ldam_drw",
    "ldam_drw": "ldam_drw",
    "focal": "ldam_drw",
    "ce": "decoupling",
    "crt": "decoupling",
    "lws": "decoupling",
    "tau_norm": "decoupling",
    "logit_adjustment": "logit_adjustment",
    "logit_adjustment_posthoc": "logit_adjustment",
    "balanced_softmax": "balanced_softmax",
    "sade": "sade",
    "balpoe": "balpoe",
    "cmo": "cmo",
    "lift": "lift",
}


def paper_config(method: str, dataset: str) -> RunConfig:
    return resolve_config(method, dataset, protocol="paper")


def rates(config: RunConfig) -> list[float]:
    """The learning rate of every 0-based epoch of `config`."""
    return [
        learning_rate(
            epoch,
            base_lr=config.lr,
            epochs=config.epochs,
            schedule=config.schedule,
            warmup_epochs=config.warmup_epochs,
            milestones=config.milestones,
            lr_decay=config.lr_decay,
            warmup_start=config.warmup_start,
        )
        for epoch in range(config.epochs)
    ]


def fields(config: RunConfig, names: dict) -> dict:
    return {name: getattr(config, name) for name in names}


# --- every recipe -------------------------------------------------------------------------------------


def test_each_paper_covers_its_methods():
    assert {name: method.paper.key for name, method in METHODS.items() if method.paper} == PAPER_OF
    for name, method in METHODS.items():
        assert bool(method.paper) == bool(method.paper_recipes), name
    # One Paper object per paper, reused by every method of that paper.
    for key in set(PAPER_OF.values()):
        assert len({id(METHODS.get(name).paper) for name in PAPER_OF if PAPER_OF[name] == key}) == 1


@pytest.mark.parametrize("method, dataset", RECIPES)
def test_a_recipe_overrides_run_config_fields_and_resolves_to_them(method, dataset):
    method_class = METHODS.get(method)
    recipe = method_class.paper_recipes[dataset]
    assert dataset in DATASETS
    assert set(recipe.overrides) <= SETTABLE
    assert recipe.source.startswith(f"{method_class.paper.repository}: ")
    assert all(deviation[0].isupper() and deviation.endswith(".") for deviation in recipe.deviations)
    config = paper_config(method, dataset)  # validated, incl. best-val only where val is not test
    assert config.protocol == "paper"
    for name, value in recipe.overrides.items():
        assert getattr(config, name) == value, name


# --- TDE (KaihuaTang/Long-Tailed-Recognition.pytorch) -------------------------------------------------


@pytest.mark.parametrize("dataset", ["cifar10_lt", "cifar100_lt"])
def test_tde_cifar_is_causal_norm_32(dataset):
    expected = {
        "backbone": "resnet32_bbn",
        "epochs": 200,
        "batch_size": 256,
        "lr": 0.2,
        "weight_decay": 5e-4,
        "momentum": 0.9,
        "nesterov": False,
        "schedule": "multistep",
        "warmup_epochs": 5,
        "warmup_start": pytest.approx(1 / 3),
        "lr_decay": 0.01,
        "imbalance_ratio": 100.0,
        "select": "last",
    }
    for method in ("causal_tde", "deconfound"):
        assert fields(paper_config(method, dataset), expected) == expected


def test_tde_cifar_rates_are_the_official_warmup_multistep_stepped_at_epoch_start():
    # WarmupMultiStepLR(milestones [120, 160], gamma 0.01, warm-up factor 1/3 over 5 epochs), stepped
    # before each 1-based epoch k: 0.2 · (1/3·(1 − k/5) + k/5 while k < 5) · 0.01^bisect_right(…, k).
    def official(k: int) -> float:
        warm_up = (1 / 3) * (1 - k / 5) + k / 5 if k < 5 else 1.0
        return 0.2 * warm_up * 0.01 ** bisect.bisect_right([120, 160], k)

    lt_bench = rates(paper_config("causal_tde", "cifar10_lt"))
    assert lt_bench == pytest.approx([official(k) for k in range(1, 201)], rel=1e-12)
    by_epoch = dict(enumerate(lt_bench, start=1))  # 1-based, as the issue names them
    assert by_epoch[1] == pytest.approx(0.09333, abs=1e-5)
    assert by_epoch[4] == pytest.approx(0.17333, abs=1e-5)
    assert by_epoch[5] == pytest.approx(0.2)
    assert by_epoch[119] == pytest.approx(0.2)
    assert by_epoch[120] == pytest.approx(0.002)
    assert by_epoch[159] == pytest.approx(0.002)
    assert by_epoch[160] == pytest.approx(2e-5)
    assert by_epoch[200] == pytest.approx(2e-5)


@pytest.mark.parametrize(
    "method, dataset",
    [("causal_tde", "imagenet_lt"), ("causal_tde", "places_lt")]
    + [(method, "imagenet_lt") for method in ("ce", "crt", "lws", "tau_norm", "balanced_softmax")],
)
def test_imagenet_lt_recipes_are_classifier_balancing_feat_uniform(method, dataset):
    # TDE's causal_norm.yaml, decoupling's feat_uniform.yaml, Balanced Softmax's resnet10 config.
    expected = {
        "epochs": 90,
        "batch_size": 512,
        "lr": 0.2,
        "weight_decay": 5e-4,
        "momentum": 0.9,
        "schedule": "cosine",
        "warmup_epochs": 0,
        "select": "best-val",
    }
    config = paper_config(method, dataset)
    assert fields(config, expected) == expected
    if method != "balanced_softmax":  # its official ResNet-10 is a named deviation
        assert (config.backbone, config.zero_init_last) == ("resnext50_32x4d", False)


@pytest.mark.parametrize("method", ["causal_tde", "ce", "crt"])
def test_imagenet_cosine_runs_one_epoch_behind_the_official_epoch_start_scheduler(method):
    # CosineAnnealingLR(T_max 90) stepped before each 1-based epoch k: 0.1·(1 + cos(πk/90)), the last
    # epoch at 0. lt-bench's epoch k runs at the official rate of epoch k − 1 (the named deviation).
    lt_bench = rates(paper_config(method, "imagenet_lt"))
    assert lt_bench == pytest.approx([0.1 * (1 + math.cos(math.pi * k / 90)) for k in range(90)], rel=1e-12)
    assert lt_bench[0] == pytest.approx(0.2)
    assert lt_bench[45] == pytest.approx(0.1)
    assert any(
        "stepped at the start of each epoch" in d
        for d in METHODS.get(method).paper_recipes["imagenet_lt"].deviations
    )


# --- LDAM-DRW (kaidic/LDAM-DRW) -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["ldam", "ldam_drw", "focal"])
@pytest.mark.parametrize("dataset", ["cifar10_lt", "cifar100_lt"])
def test_ldam_drw_cifar_is_cifar_train_py(method, dataset):
    expected = {
        "backbone": "resnet32_cifar",
        "epochs": 200,
        "batch_size": 128,
        "lr": 0.1,
        "weight_decay": 2e-4,
        "momentum": 0.9,
        "nesterov": False,
        "schedule": "multistep",
        "warmup_epochs": 5,
        "warmup_start": 0.0,
        "milestones": (160, 180),
        "lr_decay": 0.01,
        "imbalance_ratio": 100.0,
        "select": "last",
    }
    assert fields(paper_config(method, dataset), expected) == expected


def test_ldam_drw_rates_are_adjust_learning_rate():
    # 1-based epoch k: k ≤ 5 → 0.1·k/5; k > 180 → 0.1·1e-4; k > 160 → 0.1·0.01; else 0.1.
    def official(k: int) -> float:
        if k <= 5:
            return 0.1 * k / 5
        return 0.1 * (1e-4 if k > 180 else 0.01 if k > 160 else 1.0)

    assert rates(paper_config("ldam_drw", "cifar100_lt")) == pytest.approx(
        [official(k) for k in range(1, 201)], rel=1e-12
    )


# --- CMO (naver-ai/cmo) ----------------------------------------------------------------------------------


def test_cmo_cifar100_is_its_cifar_train_py_ldam_drws_script_and_defaults():
    # cifar_train.py's header: "original code: kaidic/LDAM-DRW cifar_train.py"; opts.py keeps its
    # defaults (resnet32, 200 epochs, batch 128, lr 0.1, wd 2e-4) and adjust_learning_rate is the same.
    cmo, ldam_drw = paper_config("cmo", "cifar100_lt"), paper_config("ldam_drw", "cifar100_lt")
    assert cmo.identity() | {"method": "ldam_drw"} == ldam_drw.identity()
    assert rates(cmo) == rates(ldam_drw)
    (row,) = METHODS.get("cmo").reported
    assert (row.dataset, row.imbalance_ratio, row.top1) == ("cifar100_lt", 100, 43.9)
    assert row.backbone == "ResNet-32"


# --- Decoupling (facebookresearch/classifier-balancing) -----------------------------------------------


@pytest.mark.parametrize("method", ["ce", "crt", "lws", "tau_norm"])
def test_decoupling_inat_stage_one_decays_weights_by_1e_4_and_keeps_the_last_epoch(method):
    expected = {"backbone": "resnet50", "epochs": 90, "batch_size": 512, "lr": 0.2, "weight_decay": 1e-4}
    config = paper_config(method, "inat2018")
    assert fields(config, expected) == expected
    assert config.select == "last"  # iNaturalist's val split is its test split


def test_decoupling_second_stages_name_their_own_config_and_sampler():
    crt, lws = METHODS.get("crt").paper_recipes, METHODS.get("lws").paper_recipes
    assert crt["imagenet_lt"].source.endswith("config/ImageNet_LT/cls_crt.yaml")
    assert lws["places_lt"].source.endswith("config/Places_LT/cls_lws.yaml")
    # config/iNaturalist18/cls_crt.yaml, cls_lws.yaml: 30 / 5 epochs at weight decay 1e-4
    assert (
        crt["inat2018"].overrides.items()
        >= {"second_stage_epochs": 30, "second_stage_weight_decay": 1e-4}.items()
    )
    assert "second_stage_epochs" not in lws["inat2018"].overrides  # its declared 5
    assert lws["inat2018"].overrides["second_stage_weight_decay"] == 1e-4
    for recipes in (crt, lws):
        for recipe in recipes.values():
            assert any("ClassAwareSampler" in d for d in recipe.deviations)
    places = paper_config("crt", "places_lt")
    assert (places.backbone, places.pretrained) == ("resnet152", True)  # fine-tuned from ImageNet
    assert "places_lt" not in METHODS.get("ce").paper_recipes  # no public stage-1 config


# --- Logit adjustment (google-research/google-research logit_adjustment/) ----------------------------


@pytest.mark.parametrize(
    "dataset, epochs, warmup, milestones",
    [("cifar10_lt", 1241, 20, (604, 926, 1128)), ("cifar100_lt", 1419, 22, (691, 1059, 1290))],
)
def test_logit_adjustment_is_utils_py_dataset_mappings(dataset, epochs, warmup, milestones):
    expected = {
        "backbone": "resnet32_cifar",
        "epochs": epochs,
        "batch_size": 128,
        "lr": 0.1,
        "weight_decay": 2e-4,  # a Keras L2 penalty of 1e-4 has the gradient 2e-4·w
        "momentum": 0.9,
        "nesterov": True,
        "schedule": "multistep",
        "warmup_epochs": warmup,
        "milestones": milestones,
        "lr_decay": 0.1,
        "imbalance_ratio": 100.0,
        "select": "last",
    }
    assert fields(paper_config("logit_adjustment", dataset), expected) == expected
    posthoc = paper_config("logit_adjustment_posthoc", dataset)
    assert fields(posthoc, expected) == expected
    assert posthoc.knobs == {"tau": 1.0}  # main.py's default --tau for --mode=posthoc


def test_logit_adjustment_rates_are_the_per_step_schedule_at_each_epochs_end():
    # LearningRateSchedule at lr_epoch = step / steps_per_epoch: 0.1·lr_epoch/20 in the warm-up, then
    # 0.1 × 1, 0.1, 0.01, 0.001 from lr_epoch 20, 604, 926, 1128. lt-bench runs a warm-up epoch e at the
    # rate of its end (lr_epoch e + 1) and every later epoch at its constant official rate.
    def official(lr_epoch: float) -> float:
        rate = 0.1 * lr_epoch / 20
        for multiplier, start in ((1.0, 20), (0.1, 604), (0.01, 926), (0.001, 1128)):
            if lr_epoch >= start:
                rate = 0.1 * multiplier
        return rate

    expected = [official(e + 1) if e < 20 else official(e) for e in range(1241)]
    lt_bench = rates(paper_config("logit_adjustment", "cifar10_lt"))
    assert lt_bench == pytest.approx(expected, rel=1e-12)
    assert (lt_bench[0], lt_bench[603], lt_bench[604], lt_bench[1128]) == pytest.approx(
        (0.005, 0.1, 0.01, 1e-4)
    )


# --- Balanced Softmax (jiawei-ren/BalancedMetaSoftmax-Classification) ---------------------------------


@pytest.mark.parametrize(
    "dataset, train_images, epochs, warmup",
    [("cifar10_lt", 11203, 591, 37), ("cifar100_lt", 9502, 685, 43)],
)
def test_balanced_softmax_cifar_turns_13000_iterations_into_epochs(dataset, train_images, epochs, warmup):
    batches = math.ceil(train_images / 512)  # the train loader keeps its last partial batch
    assert (math.ceil(13000 / batches), math.ceil(800 / batches)) == (epochs, warmup)
    expected = {
        "backbone": "resnet32_cifar",
        "imbalance_ratio": 200.0,
        "epochs": epochs,
        "batch_size": 512,
        "lr": 0.1,
        "weight_decay": 5e-4,
        "momentum": 0.9,
        "schedule": "cosine",
        "warmup_epochs": warmup,
        "select": "last",
    }
    assert fields(paper_config("balanced_softmax", dataset), expected) == expected


@pytest.mark.parametrize("dataset", ["cifar10_lt", "cifar100_lt"])
def test_balanced_softmax_rates_are_cosine_annealing_lr_warmup(dataset):
    # CosineAnnealingLRWarmup(base 0.05, warm-up 0.1, W epochs, T epochs) stepped before each 1-based
    # epoch k: k < W → 0.05 + 0.05·(k − 1)/(W − 1); k ≥ W → 0.1·(1 + cos(π(k − W)/(T − W)))/2.
    config = paper_config("balanced_softmax", dataset)
    warmup, epochs = config.warmup_epochs, config.epochs

    def official(k: int) -> float:
        if k < warmup:
            return 0.05 + 0.05 * (k - 1) / (warmup - 1)
        return 0.1 * (1 + math.cos(math.pi * (k - warmup) / (epochs - warmup))) / 2

    lt_bench = rates(config)
    # The same rates through the warm-up (epoch W, the cosine's start, at 0.1) …
    assert lt_bench[:warmup] == pytest.approx([official(k) for k in range(1, warmup + 1)], rel=1e-12)
    assert lt_bench[0] == pytest.approx(0.05)
    assert lt_bench[warmup - 1] == pytest.approx(0.1)
    # … then the cosine one epoch later than the official one (the named deviation).
    assert lt_bench[warmup:] == pytest.approx([official(k) for k in range(warmup, epochs)], rel=1e-12)


def test_balanced_softmax_imagenet_is_the_resnet10_config_on_the_shared_backbone():
    recipe = METHODS.get("balanced_softmax").paper_recipes["imagenet_lt"]
    assert recipe.source.endswith("config/ImageNet_LT/balanced_softmax_resnet10.yaml")
    assert "backbone" not in recipe.overrides
    assert any("ResNet-10" in d for d in recipe.deviations)


# --- LIFT (shijxcs/LIFT) ------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["cifar100_lt", "imagenet_lt", "places_lt"])
def test_lift_is_clip_vit_b16_with_adaptformer_and_five_test_crops(dataset):
    expected = {
        "backbone": "vit_base_patch16_clip_224.openai",
        "pretrained": True,
        "finetune": "peft",
        "peft": "adaptformer",
        "peft_rank": None,  # peft_vit.py's bottleneck rule: 4 for CIFAR-100, 32 for 1,000 classes
        "epochs": 10,
        "batch_size": 128,
        "lr": 0.01,
        "weight_decay": 5e-4,
        "momentum": 0.9,
        "nesterov": False,
        "test_crops": 5,
    }
    config = paper_config("lift", dataset)
    assert fields(config, expected) == expected
    # CosineAnnealingLR(T_max = 10) stepped after each epoch: epoch e at 0.01·(1 + cos(πe/10))/2.
    assert rates(config) == pytest.approx([0.005 * (1 + math.cos(math.pi * e / 10)) for e in range(10)])
    assert rates(config)[5] == pytest.approx(0.005)
    assert any("text embeddings" in d for d in METHODS.get("lift").paper_recipes[dataset].deviations)


def test_lift_shared_protocol_stays_the_datasets_recipe_with_full_fine_tuning():
    config = resolve_config("lift", "digits_lt")
    assert (config.backbone, config.pretrained, config.finetune, config.test_crops) == (
        "lt_small_cnn",
        False,
        "full",
        1,
    )


# --- reported rows ------------------------------------------------------------------------------------


def reported(method: str) -> dict:
    return {(row.dataset, row.imbalance_ratio): row for row in METHODS.get(method).reported}


@pytest.mark.parametrize("method", sorted(PAPER_OF))
def test_reported_rows_are_sane_and_reproducible(method):
    method_class = METHODS.get(method)
    if method_class.reported:
        assert "reported" in vars(method_class), "a subclass must declare its own rows, not inherit them"
    for row in method_class.reported:
        assert row.dataset in method_class.paper_recipes  # a paper recipe exists to reproduce it
        assert (row.imbalance_ratio is None) == (DATASETS.get(row.dataset).default_imbalance_ratio is None)
        for value in (row.top1, row.many, row.medium, row.few):
            assert value is None or 0 < value < 100
        assert row.backbone and row.table
    assert len(reported(method)) == len(method_class.reported)  # one row per (dataset, ratio)


def test_tde_rows_are_the_current_table_3_not_the_superseded_one():
    tde, deconfound = reported("causal_tde"), reported("deconfound")
    assert tde[("cifar10_lt", 100)].top1 == 80.6  # not 80.4 of the pretrained ResNet-32
    assert tde[("cifar100_lt", 100)].top1 == 44.1  # not 47.3
    assert deconfound[("cifar10_lt", 100)].top1 == 71.7  # not 72.5
    assert (tde[("imagenet_lt", None)].top1, tde[("imagenet_lt", None)].few) == (51.8, 31.6)
    assert (deconfound[("imagenet_lt", None)].top1, deconfound[("imagenet_lt", None)].few) == (48.6, 14.7)


def test_ldam_drw_rows_are_100_minus_the_table_2_errors():
    rows = reported("ldam_drw")
    errors = {("cifar10_lt", 100): 22.97, ("cifar10_lt", 10): 11.84, ("cifar100_lt", 100): 57.96}
    for key, error in errors.items():
        assert rows[key].top1 == pytest.approx(100 - error)
    assert METHODS.get("ldam").reported == ()  # LDAM without DRW declares none of its own


def test_lift_row_is_cifar100_lt_ir100_with_clip():
    assert reported("lift")[("cifar100_lt", 100)].top1 == 81.7
    assert {row.dataset for row in METHODS.get("lift").reported} == {"cifar100_lt"}  # the one re-checked


def test_decoupling_rows_are_the_imagenet_lt_resnext50_table():
    top1 = {name: reported(name)[("imagenet_lt", None)].top1 for name in ("ce", "crt", "tau_norm", "lws")}
    assert top1 == {"ce": 44.4, "crt": 49.6, "tau_norm": 49.4, "lws": 49.9}
    assert reported("crt")[("imagenet_lt", None)].few == 27.4


# --- SADE and BalPoE (BalPoE's code builds on SADE's CIFAR recipe) ----------------------------------


@pytest.mark.parametrize("method", ["sade", "balpoe"])
def test_sade_and_balpoe_cifar_rates_are_custom_lr(method):
    # CustomLR (step1 160, step2 180, gamma 0.1, warmup 5), a LambdaLR stepped after each epoch:
    # 0-based epoch e < 5 at 0.1·(e+1)/5, then 0.1, ×0.1 from epoch 160, ×0.01 from 180
    config = paper_config(method, "cifar100_lt")
    assert (config.backbone, config.batch_size, config.weight_decay, config.nesterov) == (
        "resnet32_cifar", 128, 5e-4, True,
    )  # fmt: skip
    expected = [0.1 * (e + 1) / 5 if e < 5 else 0.1 * 0.1 ** ((e >= 160) + (e >= 180)) for e in range(200)]
    assert rates(config) == pytest.approx(expected, rel=1e-12)


def test_sade_imagenet_lt_rates_are_cosine_annealing_stepped_after_each_epoch():
    config = paper_config("sade", "imagenet_lt")
    assert (config.backbone, config.epochs, config.batch_size, config.nesterov) == (
        "resnext50_32x4d",
        180,
        64,
        True,
    )
    expected = [0.025 * (1 + math.cos(math.pi * e / 180)) / 2 for e in range(180)]
    assert rates(config) == pytest.approx(expected, rel=1e-12)
