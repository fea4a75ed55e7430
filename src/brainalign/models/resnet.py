"""ResNets (He et al. 2016): CIFAR-style (3x3 stem, no max-pool) and ImageNet-style (``resnet50_imagenet``:
7x7 stride-2 stem and a 3x3 stride-2 max-pool, as torchvision's ResNet50 that Guo et al. trained at 224 px,
16 times fewer stem positions than the CIFAR stem at that size), four stages.

Named layers: ``stem``, ``layer1`` .. ``layer4``, ``pool`` (global average, the penultimate features).
``width`` scales the channels (64 is the standard network; smaller widths make quick CPU runs possible).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from brainalign.models.base import BrainModel, ModelInfo
from brainalign.registry import MODELS

LAYERS = ("stem", "layer1", "layer2", "layer3", "layer4", "pool")


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes))


class ResNet(BrainModel):
    def __init__(self, block: type[BasicBlock | Bottleneck], num_blocks: Sequence[int], num_classes: int,
                 in_channels: int, mean: Sequence[float], std: Sequence[float], width: int = 64,
                 input_size: int | None = None, stem: str = "cifar"):
        super().__init__(mean, std, input_size)
        if stem == "imagenet":
            self.layers["stem"] = nn.Sequential(nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
                                                nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        else:
            self.layers["stem"] = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                                                nn.BatchNorm2d(width), nn.ReLU())
        in_planes = width
        for i, n in enumerate(num_blocks):
            planes = width * 2**i
            blocks = []
            for j in range(n):
                blocks.append(block(in_planes, planes, stride=2 if (i > 0 and j == 0) else 1))
                in_planes = planes * block.expansion
            self.layers[f"layer{i + 1}"] = nn.Sequential(*blocks)
        self.layers["pool"] = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(in_planes, num_classes)


def _register(name: str, block, blocks: Sequence[int], stem: str = "cifar"):
    what = "CIFAR-style (3x3 stem, no max-pool)" if stem == "cifar" else "ImageNet-style (7x7/2 stem, max-pool)"
    @MODELS.register(name, description=f"{what} {name.split('_')[0]}, width-scalable",
                     info=ModelInfo(layers=LAYERS, penultimate="pool", min_size=8 if stem == "cifar" else 16))
    def build(num_classes: int, in_channels: int, mean, std, width: int = 64, input_size: int | None = None):
        return ResNet(block, blocks, num_classes, in_channels, mean, std, width=width, input_size=input_size,
                      stem=stem)

    return build


resnet18 = _register("resnet18", BasicBlock, (2, 2, 2, 2))
resnet34 = _register("resnet34", BasicBlock, (3, 4, 6, 3))
resnet50 = _register("resnet50", Bottleneck, (3, 4, 6, 3))
resnet50_imagenet = _register("resnet50_imagenet", Bottleneck, (3, 4, 6, 3), stem="imagenet")
