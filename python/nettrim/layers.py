"""The steps a feed-forward network is made of.

Prunable layers (:class:`Dense`, :class:`Conv2d`) carry weights, a bias and whether a ReLU
follows.  The others are parameter-free (:class:`Flatten`, :class:`MaxPool2d`,
:class:`AvgPool2d`) or get folded away before pruning (:class:`BatchNorm`, :class:`ReLU`;
see :class:`nettrim.network.Network`).  Every step maps a float32 batch to a float32 batch
and knows its output shape (per sample, without the batch axis).

A prunable layer is, for Net-Trim, ``groups`` independent problems: group ``g`` has the
matrix ``group_matrix(g)`` of shape (fan_in, outputs) acting on the columns
``input_columns(g)`` of the layer's unfolded input rows.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from . import conv
from ._validate import check_int, check_real
from .errors import InvalidArgument, InvalidArgumentType


def _pair(name, v, low):
    """An int or a pair of ints, each >= ``low``, as a pair (``stride=2`` is ``(2, 2)``)."""
    values = [v, v] if np.ndim(v) == 0 and not isinstance(v, (str, bytes)) else v
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) != 2:
        raise InvalidArgument(f"{name}: expected an integer or a pair of integers, got {v!r}")
    if any(isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Integral) for x in values):
        raise InvalidArgumentType(f"{name}: expected an integer or a pair of integers, got {v!r}")
    if any(int(x) < low for x in values):
        raise InvalidArgument(f"{name}: expected values >= {low}, got {v!r}")
    return tuple(int(x) for x in values)


def _array(name, a, ndim, what):
    """A finite float32 array of ``ndim`` dimensions (integers are converted; strings, objects and
    complex numbers are errors)."""
    if a is None:
        raise InvalidArgumentType(f"{name}: expected {what}, got None")
    if hasattr(a, "detach"):    # a torch tensor
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InvalidArgumentType(f"{name}: expected {what} of real numbers, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise InvalidArgument(f"{name}: expected {what}, got shape {arr.shape}")
    arr = np.asarray(arr, np.float32)
    if not np.isfinite(arr).all():
        raise InvalidArgument(f"{name}: expected finite values, got NaN or Inf")
    return arr


def _check_flags(layer):
    for field in ("relu",) + (("has_bias",) if layer.has_bias is not None else ()):
        if not isinstance(getattr(layer, field), (bool, np.bool_)):
            raise InvalidArgumentType(f"{layer.name or type(layer).__name__}: {field}: expected True or False, "
                            f"got {getattr(layer, field)!r}")
    if not isinstance(layer.name, str):
        raise InvalidArgumentType(f"name: expected a string, got {layer.name!r}")


class _Prunable:
    """What Dense and Conv2d share: the activation, and counts over ``matrix`` (a view of the weights).

    ``residual``: in a graph model, the output is added to a skip signal before its ReLU
    (see :mod:`nettrim.graph`); the layer's unfolded inputs then carry that signal as their
    last columns, which :meth:`input_columns` leaves out."""

    residual = False

    def nnz(self):
        return int(np.count_nonzero(self.matrix))

    @property
    def size(self):
        return self.matrix.size

    def __call__(self, x):
        z = self.preactivation(x)
        return np.maximum(z, 0) if self.relu else z


@dataclass(eq=False)
class Dense(_Prunable):
    """``y = act(x @ weight + bias)``, ``weight`` of shape (n_in, n_out): inputs by outputs, as
    ``X @ W`` everywhere in nettrim (scikit-learn's ``coefs_``; the transpose of PyTorch's
    ``Linear.weight``)."""
    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    relu: bool = True
    name: str = ""
    has_bias: Optional[bool] = None   # default: whether b was given; without one, none is fitted

    groups = 1

    def __post_init__(self):
        _check_flags(self)
        prefix = f"{self.name}: " if self.name else ""
        self.weight = _array(prefix + "weight", self.weight, 2, "a weight matrix (n_in, n_out)")
        if self.has_bias is None:
            self.has_bias = self.bias is not None
        self.bias = (np.zeros(self.weight.shape[-1], np.float32) if self.bias is None
                  else _array(prefix + "bias", self.bias, None, "a bias vector").reshape(-1))
        if self.bias.shape != (self.weight.shape[1],):
            raise InvalidArgument(f"{prefix}bias: expected shape ({self.weight.shape[1]},) to match the weight {self.weight.shape}, "
                             f"got {self.bias.shape}")

    @property
    def shape(self):
        return self.weight.shape

    @property
    def matrix(self):
        return self.weight

    def output_shape(self, in_shape):
        if tuple(in_shape) != (self.weight.shape[0],):
            raise InvalidArgument(f"{self.name}: expects {self.weight.shape[0]} input features, gets shape {tuple(in_shape)}"
                             + (" (add a Flatten before it)" if len(in_shape) > 1 else ""))
        return (self.weight.shape[1],)

    def preactivation(self, x):
        return x @ self.weight + self.bias

    # --- the Net-Trim view -------------------------------------------------------------
    def unfold(self, x, images, rows, cols):
        return x[images]

    def input_columns(self, g):
        return slice(0, self.weight.shape[0])

    def group_matrix(self, g):
        return self.weight, self.bias

    def set_groups(self, matrices, biases):
        self.weight = np.asarray(matrices[0], np.float32)
        self.bias = np.asarray(biases[0], np.float32)

    def scale_outputs(self, s, shift):
        """Fold a per-output affine map ``y -> s * y + shift`` into the layer (batch norm)."""
        self.weight = (self.weight * s).astype(np.float32)
        self.bias = (self.bias * s + shift).astype(np.float32)
        self.has_bias = True


@dataclass(eq=False)
class Conv2d(_Prunable):
    """2-D convolution as ``torch.nn.Conv2d``: weight (C_out, C_in / groups, kh, kw), NCHW data."""
    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int] = (0, 0)
    dilation: Tuple[int, int] = (1, 1)
    groups: int = 1
    relu: bool = True
    name: str = ""
    has_bias: Optional[bool] = None

    def __post_init__(self):
        _check_flags(self)
        prefix = f"{self.name}: " if self.name else ""
        self.weight = _array(prefix + "weight", self.weight, 4, "a kernel (C_out, C_in/groups, kh, kw)")
        c_out = self.weight.shape[0]
        if self.has_bias is None:
            self.has_bias = self.bias is not None
        self.bias = (np.zeros(c_out, np.float32) if self.bias is None
                  else _array(prefix + "bias", self.bias, None, "a bias vector").reshape(-1))
        if self.bias.shape != (c_out,):
            raise InvalidArgument(f"{prefix}bias: expected shape ({c_out},) to match the weight {self.weight.shape}, "
                             f"got {self.bias.shape}")
        self.stride = _pair(prefix + "stride", self.stride, 1)
        self.padding = _pair(prefix + "padding", self.padding, 0)
        self.dilation = _pair(prefix + "dilation", self.dilation, 1)
        self.groups = check_int(prefix + "groups", self.groups, low=1)
        if c_out % self.groups:
            raise InvalidArgument(f"{prefix}groups: expected a divisor of C_out={c_out}, got {self.groups}")

    @property
    def shape(self):
        return self.weight.shape

    @property
    def kernel(self):
        return self.weight.shape[2:]

    @property
    def matrix(self):
        """All groups side by side: (C_in/groups * kh * kw, C_out); for display and counting."""
        return self.weight.reshape(self.weight.shape[0], -1).T

    def output_shape(self, in_shape):
        if len(in_shape) != 3 or in_shape[0] != self.weight.shape[1] * self.groups:
            raise InvalidArgument(f"{self.name}: expects inputs (C={self.weight.shape[1] * self.groups}, H, W), "
                             f"gets shape {tuple(in_shape)}")
        h, w = (conv.output_size(n, k, s, p, d) for n, k, s, p, d in
                zip(in_shape[1:], self.kernel, self.stride, self.padding, self.dilation))
        if h < 1 or w < 1:
            raise InvalidArgument(f"{self.name}: the kernel does not fit the input of shape {tuple(in_shape)}")
        return (self.weight.shape[0], h, w)

    def preactivation(self, x):
        return conv.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    # --- the Net-Trim view -------------------------------------------------------------
    def unfold(self, x, images, rows, cols):
        return conv.unfold_at(x, self.kernel, self.stride, self.padding, self.dilation, images, rows, cols)

    def input_columns(self, g):
        fan_in = self.weight[0].size
        return slice(g * fan_in, (g + 1) * fan_in)

    def group_matrix(self, g):
        cout_g = self.weight.shape[0] // self.groups
        block = self.weight[g * cout_g:(g + 1) * cout_g]
        return block.reshape(cout_g, -1).T, self.bias[g * cout_g:(g + 1) * cout_g]

    def set_groups(self, matrices, biases):
        self.weight = conv.fold_weight(matrices, self.kernel).astype(np.float32)
        self.bias = np.concatenate(biases).astype(np.float32)

    def scale_outputs(self, s, shift):
        self.weight = (self.weight * s[:, None, None, None]).astype(np.float32)
        self.bias = (self.bias * s + shift).astype(np.float32)
        self.has_bias = True


@dataclass(eq=False)
class Flatten:
    """(C, H, W) to (C * H * W,) in C order, as ``torch.flatten(x, 1)``."""

    def output_shape(self, in_shape):
        return (int(np.prod(in_shape)),)

    def __call__(self, x):
        return x.reshape(len(x), -1)


@dataclass(eq=False)
class MaxPool2d:
    kernel: Tuple[int, int]
    stride: Optional[Tuple[int, int]] = None
    padding: Tuple[int, int] = (0, 0)

    def __post_init__(self):
        self.kernel = _pair("kernel", self.kernel, 1)
        self.stride = self.kernel if self.stride is None else _pair("stride", self.stride, 1)
        self.padding = _pair("padding", self.padding, 0)

    def output_shape(self, in_shape):
        if len(in_shape) != 3:
            raise InvalidArgument(f"{type(self).__name__}: expects inputs (C, H, W), gets shape {tuple(in_shape)}")
        return (in_shape[0],) + tuple(conv.output_size(n, k, s, p) for n, k, s, p in
                                      zip(in_shape[1:], self.kernel, self.stride, self.padding))

    def __call__(self, x):
        return conv.max_pool2d(x, self.kernel, self.stride, self.padding)


@dataclass(eq=False)
class AvgPool2d(MaxPool2d):
    count_include_pad: bool = True

    def __call__(self, x):
        return conv.avg_pool2d(x, self.kernel, self.stride, self.padding, self.count_include_pad)


@dataclass(eq=False)
class BatchNorm:
    """Inference-mode batch norm over channels (or features); folded into the layer before it."""
    weight: Optional[np.ndarray]
    bias: Optional[np.ndarray]
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5

    def __post_init__(self):
        n = np.shape(self.mean)
        for field in ("weight", "bias", "mean", "var"):
            value = getattr(self, field)
            if value is None and field in ("weight", "bias"):
                continue
            arr = _array(f"BatchNorm {field}", value, 1, "a vector (one value per feature)")
            if arr.shape != n:
                raise InvalidArgument(f"BatchNorm {field}: expected shape {n} like mean, got {arr.shape}")
        if (np.asarray(self.var) < 0).any():
            raise InvalidArgument("BatchNorm var: expected variances >= 0, got negative values")
        self.eps = check_real("BatchNorm eps", self.eps, low=0)

    def affine(self):
        """``(s, shift)`` with ``bn(y) = s * y + shift``."""
        mean, var = np.asarray(self.mean, np.float64), np.asarray(self.var, np.float64)
        gamma = np.ones_like(mean) if self.weight is None else np.asarray(self.weight, np.float64)
        beta = np.zeros_like(mean) if self.bias is None else np.asarray(self.bias, np.float64)
        s = gamma / np.sqrt(var + self.eps)
        return s, beta - s * mean


@dataclass(eq=False)
class ReLU:
    """A ReLU step; merged into the layer before it (its ``relu`` flag)."""


PRUNABLE = (Dense, Conv2d)
