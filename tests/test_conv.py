"""Convolution by unfolding: the numpy forward pass, im2col and folding back, against PyTorch."""
import numpy as np
import pytest
from nettrim import conv
from nettrim.layers import AvgPool2d, Conv2d, MaxPool2d

torch = pytest.importorskip("torch")
F = torch.nn.functional

CASES = [  # (C_in, C_out, kernel, stride, padding, dilation, groups)
    (3, 4, (3, 3), (1, 1), (0, 0), (1, 1), 1),
    (3, 6, (3, 2), (2, 1), (1, 2), (1, 1), 1),
    (4, 6, (3, 3), (1, 2), (2, 1), (2, 1), 2),
    (4, 4, (2, 2), (1, 1), (1, 1), (1, 1), 4),     # depthwise
]


@pytest.mark.parametrize("c_in, c_out, kernel, stride, padding, dilation, groups", CASES)
def test_conv2d_matches_torch(c_in, c_out, kernel, stride, padding, dilation, groups):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, c_in, 9, 10)).astype(np.float32)
    w = rng.standard_normal((c_out, c_in // groups) + kernel).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    want = F.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride, padding, dilation, groups).numpy()
    layer = Conv2d(w, b, stride, padding, dilation, groups, relu=False)
    got = layer(x)
    assert got.shape == want.shape == (5,) + layer.output_shape((c_in, 9, 10))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    # Unfolded rows at every position, times each group's matrix, give the same outputs.
    _, ho, wo = layer.output_shape((c_in, 9, 10))
    images, pixel = np.divmod(np.arange(5 * ho * wo), ho * wo)
    rows, cols = np.divmod(pixel, wo)
    patches = layer.unfold(x, images, rows, cols)
    for g in range(groups):
        W, bg = layer.group_matrix(g)
        out = patches[:, layer.input_columns(g)] @ W + bg
        cg = c_out // groups
        np.testing.assert_allclose(out, want[images, g * cg:(g + 1) * cg, rows, cols], rtol=1e-5, atol=1e-5)

    # Folding the group matrices back reproduces the weight exactly.
    matrices = [layer.group_matrix(g)[0] for g in range(groups)]
    np.testing.assert_array_equal(conv.fold_weight(matrices, kernel), w)


@pytest.mark.parametrize("kernel, stride, padding", [((2, 2), None, (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (0, 1))])
def test_pooling_matches_torch(kernel, stride, padding):
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 8)).astype(np.float32)
    t = torch.tensor(x)
    s = stride or kernel
    # (a maximum rounds nothing: equal bit for bit, a NaN spreading to its windows as in torch)
    np.testing.assert_array_equal(MaxPool2d(kernel, stride, padding)(x), F.max_pool2d(t, kernel, s, padding).numpy())
    with_nan = x.copy()
    with_nan[1, 2, 4, 3] = np.nan
    np.testing.assert_array_equal(MaxPool2d(kernel, stride, padding)(with_nan),
                                  F.max_pool2d(torch.tensor(with_nan), kernel, s, padding).numpy())
    for include in (True, False):
        np.testing.assert_allclose(AvgPool2d(kernel, stride, padding, include)(x),
                                   F.avg_pool2d(t, kernel, s, padding, count_include_pad=include).numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_sampled_positions_are_seeded_and_bounded(digits_cnn):
    from nettrim.adapters.torch import from_torch
    model, Xtr, *_ = digits_cnn
    net = from_torch(model, (1, 8, 8))
    plan = net.sample_positions(len(Xtr), max_samples=500, seed=3)
    again = net.sample_positions(len(Xtr), max_samples=500, seed=3)
    other = net.sample_positions(len(Xtr), max_samples=500, seed=4)
    assert len(plan[0][0]) == 500 and len(plan[1][0]) == 500      # conv layers: subsampled
    assert len(plan[2][0]) == len(Xtr)                             # dense layers: every sample
    assert all(np.array_equal(a, b) for p, q in zip(plan, again) for a, b in zip(p, q))
    assert not np.array_equal(plan[0][1], other[0][1])
    inputs = net.layer_inputs(Xtr, plan, [0, 1, 2], batch_size=100)   # batches cut through the plan
    assert inputs[1].shape == (500, 16 * 9) and inputs[2].shape == (len(Xtr), 128)
    # Not bit-identity: the batched pass and the one-batch pass below sum float32 products
    # in different orders (BLAS blocks by batch size, and by CPU), measured up to 2.1e-6
    # apart.  What is checked is that every row comes from the right sample and position:
    # a wrong row would differ by the size of the values, not by float32 rounding.
    h = Xtr
    for step in net.steps[:net.steps.index(net.layers[2])]:
        h = step(h)
    np.testing.assert_allclose(inputs[2], h, rtol=1e-5, atol=1e-5 * np.abs(h).max())
    h = Xtr
    for step in net.steps[:net.steps.index(net.layers[1])]:
        h = step(h)
    want = net.layers[1].unfold(h, *plan[1])
    np.testing.assert_allclose(inputs[1], want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
