"""Mask R-CNN (He et al. 2017) from torchvision with a timm backbone through an FPN, and a box head whose
classifier, RoI loss and inference rule come from the method (`Method`'s instance segmentation hooks)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads, maskrcnn_inference, maskrcnn_loss
from torchvision.models.detection.rpn import AnchorGenerator
from torchvision.ops import (
    FeaturePyramidNetwork,
    MultiScaleRoIAlign,
    batched_nms,
    box_area,
    clip_boxes_to_image,
)
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from lt_bench.method import Method


@dataclass(frozen=True)
class DetectorConfig:
    """The detector's shape. Defaults are Mask R-CNN R50-FPN's (Detectron2 / mmdetection) but for the
    anchor sizes and image sizes, which the dataset sets."""

    backbone: str = "resnet50"
    out_indices: tuple[int, ...] = (1, 2, 3, 4)  # timm feature levels fed to the FPN (strides 4–32)
    fpn_channels: int = 256
    representation_size: int = 1024  # D: the two shared FC layers of the box head (the TDE paper's D)
    mask_head_channels: tuple[int, ...] = (256, 256, 256, 256)
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)  # one per FPN level, the max-pool level last
    min_size: int = 800
    max_size: int = 1333
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    detections_per_image: int = 300  # LVIS keeps 300 (Gupta et al. 2019)
    box_score_threshold: float = 0.0001  # LVIS configs of mmdetection / Detectron2
    pretrained: bool = False


class TimmFpnBackbone(nn.Module):
    """A timm model's feature levels (`features_only`) through an FPN with an extra max-pooled level."""

    def __init__(self, config: DetectorConfig, in_chans: int) -> None:
        super().__init__()
        self.body = timm.create_model(
            config.backbone,
            features_only=True,
            out_indices=config.out_indices,
            in_chans=in_chans,
            pretrained=config.pretrained,
        )
        self.fpn = FeaturePyramidNetwork(
            self.body.feature_info.channels(), config.fpn_channels, extra_blocks=LastLevelMaxPool()
        )
        self.out_channels = config.fpn_channels

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        levels = self.body(images)
        return self.fpn(OrderedDict((str(i), level) for i, level in enumerate(levels)))


class BoxPredictor(nn.Module):
    """The method's classifier (logits over background 0 and the C categories) beside class-specific box
    regression (Fast R-CNN's 4 deltas per class, background included)."""

    def __init__(self, classifier: nn.Module, representation_size: int, num_classes: int) -> None:
        super().__init__()
        self.classifier = classifier
        self.box_regression = nn.Linear(representation_size, (num_classes + 1) * 4)
        nn.init.normal_(self.box_regression.weight, std=0.001)
        nn.init.zeros_(self.box_regression.bias)


def box_regression_loss(
    deltas: torch.Tensor, labels: torch.Tensor, regression_targets: torch.Tensor
) -> torch.Tensor:
    """Fast R-CNN's smooth-L1 (β = 1/9) on the deltas of each foreground RoI's own class, summed and
    divided by all sampled RoIs (torchvision's `fastrcnn_loss`)."""
    foreground = torch.nonzero(labels > 0).squeeze(1)
    own = deltas.reshape(len(labels), -1, 4)[foreground, labels[foreground]]
    loss = F.smooth_l1_loss(own, regression_targets[foreground], beta=1 / 9, reduction="sum")
    return loss / labels.numel()


class MethodRoIHeads(RoIHeads):
    """torchvision's RoI heads with the box classifier's loss and scores taken from `method`."""

    def __init__(self, method: Method, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.method = method
        self.knobs: dict[str, float] = {}  # test-time knobs of `method.roi_scores`, chosen on validation

    def forward(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[torch.Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, torch.Tensor]] | None = None,
    ) -> tuple[list[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
        if self.training:
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(
                proposals, targets
            )
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        deltas = self.box_predictor.box_regression(box_features)
        classifier = self.box_predictor.classifier
        if self.training:
            all_labels = torch.cat(labels)
            self.method.on_roi_features(box_features.detach(), all_labels)
            losses = {
                "loss_classifier": self.method.roi_loss(classifier(box_features), all_labels),
                "loss_box_reg": box_regression_loss(deltas, all_labels, torch.cat(regression_targets)),
            }
            losses["loss_mask"] = self._mask_loss(
                features, proposals, image_shapes, targets, labels, matched_idxs
            )
            return [], losses
        scores = self.method.roi_scores(classifier, box_features, **self.knobs)
        detections = self._detections(scores, deltas, proposals, image_shapes)
        mask_features = self.mask_head(
            self.mask_roi_pool(features, [d["boxes"] for d in detections], image_shapes)
        )
        masks = maskrcnn_inference(self.mask_predictor(mask_features), [d["labels"] for d in detections])
        for detection, mask in zip(detections, masks, strict=True):
            detection["masks"] = mask
        return detections, {}

    def _mask_loss(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[torch.Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, torch.Tensor]],
        labels: list[torch.Tensor],
        matched_idxs: list[torch.Tensor],
    ) -> torch.Tensor:
        """Mask R-CNN's per-class binary mask loss on the foreground RoIs."""
        foreground = [torch.nonzero(image_labels > 0).squeeze(1) for image_labels in labels]
        positive = [p[f] for p, f in zip(proposals, foreground, strict=True)]
        mask_logits = self.mask_predictor(
            self.mask_head(self.mask_roi_pool(features, positive, image_shapes))
        )
        return maskrcnn_loss(
            mask_logits,
            positive,
            [t["masks"] for t in targets],
            [t["labels"] for t in targets],
            [m[f] for m, f in zip(matched_idxs, foreground, strict=True)],
        )

    def _detections(
        self,
        scores: torch.Tensor,
        deltas: torch.Tensor,
        proposals: list[torch.Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> list[dict[str, torch.Tensor]]:
        """Per image: every (RoI, category) above the score threshold, class-wise NMS, the top scores."""
        boxes = self.box_coder.decode(deltas, proposals)
        detections = []
        per_image = [len(p) for p in proposals]
        for image_boxes, image_scores, shape in zip(
            boxes.split(per_image), scores.split(per_image), image_shapes, strict=True
        ):
            image_boxes = clip_boxes_to_image(image_boxes, shape)[:, 1:].reshape(-1, 4)
            num_classes = image_scores.shape[1] - 1
            labels = torch.arange(1, num_classes + 1, device=scores.device).repeat(len(image_scores))
            image_scores = image_scores[:, 1:].reshape(-1)
            keep = (image_scores > self.score_thresh) & (box_area(image_boxes) > 0)
            keep &= ((image_boxes[:, 2:] - image_boxes[:, :2]) >= 1e-2).all(dim=1)
            image_boxes, image_scores, labels = image_boxes[keep], image_scores[keep], labels[keep]
            kept = batched_nms(image_boxes, image_scores, labels, self.nms_thresh)[: self.detections_per_img]
            detections.append(
                {"boxes": image_boxes[kept], "scores": image_scores[kept], "labels": labels[kept]}
            )
        return detections


def build_detector(
    method: Method,
    config: DetectorConfig,
    num_classes: int,
    in_chans: int,
    image_mean: list[float],
    image_std: list[float],
) -> MaskRCNN:
    """Mask R-CNN on a timm + FPN backbone whose box classifier is `method.build_box_classifier()`."""
    backbone = TimmFpnBackbone(config, in_chans)
    levels = [str(i) for i in range(len(config.out_indices))]
    anchors = AnchorGenerator(
        tuple((size,) for size in config.anchor_sizes), ((0.5, 1.0, 2.0),) * len(config.anchor_sizes)
    )
    model = MaskRCNN(
        backbone,
        num_classes=None,
        min_size=config.min_size,
        max_size=config.max_size,
        image_mean=image_mean,
        image_std=image_std,
        rpn_anchor_generator=anchors,
        rpn_batch_size_per_image=config.rpn_batch_size_per_image,
        box_predictor=nn.Identity(),  # replaced below: the RoI heads are the method's
        mask_predictor=nn.Identity(),
    )
    resolution = 7
    box_head = TwoMLPHead(config.fpn_channels * resolution**2, config.representation_size)
    mask_head = MaskRCNNHeads(config.fpn_channels, list(config.mask_head_channels), dilation=1)
    model.roi_heads = MethodRoIHeads(
        method,
        box_roi_pool=MultiScaleRoIAlign(levels, output_size=resolution, sampling_ratio=2),
        box_head=box_head,
        box_predictor=BoxPredictor(method.build_box_classifier(), config.representation_size, num_classes),
        fg_iou_thresh=0.5,
        bg_iou_thresh=0.5,
        batch_size_per_image=config.box_batch_size_per_image,
        positive_fraction=0.25,
        bbox_reg_weights=None,
        score_thresh=config.box_score_threshold,
        nms_thresh=0.5,
        detections_per_img=config.detections_per_image,
        mask_roi_pool=MultiScaleRoIAlign(levels, output_size=14, sampling_ratio=2),
        mask_head=mask_head,
        mask_predictor=MaskRCNNPredictor(
            config.mask_head_channels[-1], config.mask_head_channels[-1], num_classes + 1
        ),
    )
    return model
