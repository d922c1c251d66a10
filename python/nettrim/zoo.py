"""Plain PyTorch architectures of the graph benchmarks and tests: a ResNet, a MobileNetV2 and a ViT.

They live in the package, not in bench/ or tests/, so that a model pickled whole with
``torch.save(model, path)`` loads (``torch.load(path, weights_only=False)``) anywhere nettrim
is installed: the pickle names its classes by module, ``nettrim.zoo``.

Every model is traceable by ``torch.fx.symbolic_trace`` (no Python control flow depends on the
data; the branches below test attributes fixed at construction) and exports to ONNX with
``torch.onnx.export(..., dynamo=False, opset_version=17)`` with a dynamic batch axis.

The models are fully convolutional up to a global average pool (the ViT up to a mean over its
tokens), so unit tests can run them small: ``resnet20(width=4)`` and ``mobilenet_v2_small()``
on 8x8 images, ``vit_tiny(dim=16, depth=1, heads=2, image_size=8)``.

This module imports torch at its top; ``nettrim/__init__.py`` never imports it, so nettrim
itself imports without torch.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["BasicBlock", "ResNet", "resnet20", "InvertedResidual", "MobileNetV2Small", "mobilenet_v2_small",
           "HandAttention", "ViTBlock", "ViT", "vit_tiny"]


# --- ResNet-20 ------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``; the shortcut is the identity, or a
    strided 1x1 convolution and batch norm where the block changes the shape."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        # None rather than nn.Identity: the traced graph then has no node for the identity shortcut
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_channels))
        self.relu_out = nn.ReLU()

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        out = out + identity
        return self.relu_out(out)


class ResNet(nn.Module):
    """CIFAR-style ResNet: a 3x3 stem, three stages of basic blocks at width, 2 width and 4 width
    channels (the second and third halve the resolution), global average pool, linear head."""

    def __init__(self, blocks_per_stage: int = 3, num_classes: int = 10, in_channels: int = 1, width: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        stages, channels = [], width
        for i, stage_width in enumerate((width, 2 * width, 4 * width)):
            blocks = []
            for j in range(blocks_per_stage):
                blocks.append(BasicBlock(channels, stage_width, 2 if i > 0 and j == 0 else 1))
                channels = stage_width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.pool(x)))


def resnet20(num_classes: int = 10, in_channels: int = 1, width: int = 16) -> ResNet:
    """ResNet-20 (He et al. 2016, CIFAR variant): 19 convolutions in 9 basic blocks and a linear
    layer, 0.27 M weights at width 16; on 28x28 images the stages run at 28, 14 and 7 pixels."""
    return ResNet(3, num_classes, in_channels, width)


# --- MobileNetV2 ----------------------------------------------------------------------------------

class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion, BN, ReLU; depthwise 3x3 (stride 1 or 2), BN, ReLU;
    1x1 linear projection, BN with no activation after it; plus the input where the block keeps
    the shape."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand: int):
        super().__init__()
        hidden = in_channels * expand
        self.expand = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.relu1 = nn.ReLU()
        self.depthwise = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.relu2 = nn.ReLU()
        self.project = nn.Conv2d(hidden, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        out = self.relu1(self.bn1(self.expand(x)))
        out = self.relu2(self.bn2(self.depthwise(out)))
        out = self.bn3(self.project(out))
        if self.residual:
            out = out + x
        return out


class MobileNetV2Small(nn.Module):
    """A small MobileNetV2 for 28x28 images; see :func:`mobilenet_v2_small`."""

    # (output channels, stride) of each inverted residual block: 28x28 -> 14x14 -> 7x7
    BLOCKS = ((16, 1), (24, 2), (24, 1), (32, 2), (32, 1), (64, 1))

    def __init__(self, num_classes: int = 10, in_channels: int = 1, expand: int = 4, last_channels: int = 128):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        blocks, channels = [], 16
        for out_channels, stride in self.BLOCKS:
            blocks.append(InvertedResidual(channels, out_channels, stride, expand))
            channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.conv2 = nn.Conv2d(channels, last_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(last_channels)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(last_channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.blocks(x)
        x = self.relu2(self.bn2(self.conv2(x)))
        return self.fc(self.flatten(self.pool(x)))


def mobilenet_v2_small(num_classes: int = 10, in_channels: int = 1) -> MobileNetV2Small:
    """MobileNetV2-style network (Sandler et al. 2018) sized for 28x28 images: a 3x3 stem of 16
    channels, six inverted residual blocks (expansion 4; 16, 24, 24, 32, 32, 64 channels; strides
    bring 28x28 to 7x7; residual adds in the three blocks that keep the shape), a 1x1 convolution
    to 128 channels, global average pool, linear head.

    The activations are ReLU, not MobileNetV2's ReLU6: Net-Trim's program (a layer's outputs kept
    close through the ReLU's active and inactive sets) is written for ReLU."""
    return MobileNetV2Small(num_classes, in_channels)


# --- ViT ------------------------------------------------------------------------------------------

class HandAttention(nn.Module):
    """Multi-head self-attention from plain linear layers, ``proj(softmax(q k^T / sqrt(d)) v)``
    with separate ``q``, ``k``, ``v`` and ``proj``: the same function as nn.MultiheadAttention,
    but every projection is an nn.Linear a graph pruner sees as a layer of its own (the
    MultiheadAttention module hides its q, k, v projections in one ``in_proj_weight``)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.scale = 1 / math.sqrt(self.head_dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def _split(self, x):
        """(batch, tokens, dim) -> (batch, heads, tokens, head_dim); unflatten with the fixed head
        counts, so neither tracing nor ONNX export needs the batch or token count."""
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def forward(self, x):
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        weights = torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1)
        return self.proj((weights @ v).transpose(1, 2).flatten(2))


class ViTBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln1(x))``, then ``x + fc2(gelu(fc1(ln2(x))))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, attention: str):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        if attention == "mha":
            self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        elif attention == "hand":
            self.attn = HandAttention(dim, heads)
        else:
            raise ValueError(f"attention is 'mha' or 'hand', not {attention!r}")
        self.mha = attention == "mha"
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_ratio * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(mlp_ratio * dim, dim)

    def forward(self, x):
        h = self.ln1(x)
        x = x + (self.attn(h, h, h, need_weights=False)[0] if self.mha else self.attn(h))
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


class ViT(nn.Module):
    """Vision transformer; see :func:`vit_tiny`."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, dim: int = 64, depth: int = 4, heads: int = 4,
                 mlp_ratio: int = 2, attention: str = "mha", image_size: int = 28, patch_size: int = 4):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        tokens = (image_size // patch_size) ** 2
        self.patch = nn.Conv2d(in_channels, dim, patch_size, patch_size)
        self.pos = nn.Parameter(torch.zeros(1, tokens, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(*(ViTBlock(dim, heads, mlp_ratio, attention) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        x = self.norm(self.blocks(x))
        return self.head(x.mean(dim=1))


def vit_tiny(num_classes: int = 10, in_channels: int = 1, dim: int = 64, depth: int = 4, heads: int = 4,
             mlp_ratio: int = 2, attention: str = "mha", image_size: int = 28, patch_size: int = 4) -> ViT:
    """A tiny vision transformer (Dosovitskiy et al. 2021): 4x4 patches embedded by a strided
    convolution (49 tokens of a 28x28 image), a learned positional embedding, ``depth`` pre-norm
    blocks, a final LayerNorm, the mean over tokens and a linear head.

    ``attention="mha"`` uses nn.MultiheadAttention; ``"hand"`` uses :class:`HandAttention`, the
    same function with its q, k, v and output projections as separate nn.Linear layers."""
    return ViT(num_classes, in_channels, dim, depth, heads, mlp_ratio, attention, image_size, patch_size)
