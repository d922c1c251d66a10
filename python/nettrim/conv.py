"""2-D convolution and pooling in numpy, through unfolding (im2col).

A convolution with weights ``(C_out, C_in / groups, kh, kw)`` is, at every output position,
a dense layer applied to the patch under the kernel.  Unfolding the patches at a set of
positions into rows turns a convolutional layer into the problem of one layer
(docs/formulation.rst, "Convolutional layers"); the pruned ``(fan_in, C_out / groups)``
matrices fold back with :func:`fold_weight`.  Layouts follow PyTorch (NCHW; weights OIHW),
so folded weights drop into ``nn.Conv2d`` unchanged.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def output_size(size, kernel, stride, padding, dilation=1):
    """Output length along one axis (floor mode, as PyTorch and ONNX without ceil_mode)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _windows(x, kernel, stride, padding, dilation, pad_value=0.0):
    """View of shape (N, C, Ho, Wo, kh, kw): the patch under the kernel at every output position."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    v = sliding_window_view(x, (span_h, span_w), axis=(2, 3))
    return v[:, :, ::sh, ::sw, ::dh, ::dw]


def conv2d(x, weight, bias, stride, padding, dilation, groups):
    """Cross-correlation as in ``torch.nn.functional.conv2d``; x (N, C_in, H, W) float32."""
    n = x.shape[0]
    c_out = weight.shape[0]
    win = _windows(x, weight.shape[2:], stride, padding, dilation)      # N, C, Ho, Wo, kh, kw
    ho, wo = win.shape[2], win.shape[3]
    cin_g, cout_g = weight.shape[1], c_out // groups
    out = np.empty((n, ho, wo, c_out), dtype=np.result_type(x, weight))
    for g in range(groups):
        # im2col for this group: rows are positions, columns (channel, ky, kx) as in OIHW.
        cols = win[:, g * cin_g:(g + 1) * cin_g].transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, -1)
        w = weight[g * cout_g:(g + 1) * cout_g].reshape(cout_g, -1)
        out[..., g * cout_g:(g + 1) * cout_g] = (cols @ w.T).reshape(n, ho, wo, cout_g)
    if bias is not None:
        out += bias
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def unfold_at(x, kernel, stride, padding, dilation, images, rows, cols):
    """Patches at chosen output positions: (S, C_in * kh * kw), columns ordered as OIHW weights.

    ``images``, ``rows``, ``cols`` (length S) index the batch and the output grid."""
    win = _windows(x, kernel, stride, padding, dilation)
    patches = win[images, :, rows, cols]                                # S, C, kh, kw
    return patches.reshape(len(images), -1)


def fold_weight(matrices, kernel):
    """Per-group matrices (fan_in_g, C_out_g) back to an OIHW weight (C_out, C_in_g, kh, kw)."""
    kh, kw = kernel
    blocks = [m.T.reshape(m.shape[1], -1, kh, kw) for m in matrices]
    return np.concatenate(blocks, axis=0)


def max_pool2d(x, kernel, stride, padding):
    # One element-wise maximum per kernel offset, over strided views: the same values as a
    # reduction over the window axes (a maximum rounds nothing), and faster, since such a
    # reduction walks the 6-d view element by element.  Measured on the Fashion CNN's first
    # pool (1000 x 16 x 24 x 24, 2 x 2): 157 -> 21 ms; the Fashion CNN at 90% removed (parallel),
    # whose curves score each point with forward passes, 50.6 -> 30.1 s, the same weights.
    win = _windows(x, kernel, stride, padding, (1, 1), pad_value=-np.inf)
    out = win[..., 0, 0].copy()
    for i in range(win.shape[4]):
        for j in range(win.shape[5]):
            if i or j:
                np.maximum(out, win[..., i, j], out=out)
    return out


def avg_pool2d(x, kernel, stride, padding, count_include_pad=True):
    win = _windows(x, kernel, stride, padding, (1, 1))
    total = win.sum(axis=(4, 5))
    if count_include_pad or not any(padding):
        return (total / (kernel[0] * kernel[1])).astype(x.dtype, copy=False)
    ones = np.ones((1, 1) + x.shape[2:], x.dtype)
    counts = _windows(ones, kernel, stride, padding, (1, 1)).sum(axis=(4, 5))
    return (total / counts).astype(x.dtype, copy=False)
