"""Module 09: convolution, pooling, Flatten and BatchNorm2d against loop-based NumPy
references, float64 finite differences (`gradcheck`) and PyTorch where installed.

Tolerances: float32 forward results against a float64 reference, rtol 1e-4 / atol 1e-5
(sums of up to a few hundred float32 products); gradcheck runs in float64 with its
defaults (atol 1e-5, rtol 1e-3); PyTorch comparisons in float32, rtol 1e-4 / atol 1e-5.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tinytorch.core.autograd import gradcheck, no_grad
from tinytorch.core.layers import Module, Sequential
from tinytorch.core.spatial import (AvgPool2d, BatchNorm2d, Conv2d, Flatten, MaxPool2d, avg_pool2d,
                                    batch_norm2d, col2im, conv2d, im2col, max_pool2d)
from tinytorch.core.tensor import Tensor, manual_seed

RTOL, ATOL = 1e-4, 1e-5


# --- loop-based references: slow, written straight from the definitions ----------------

def ref_conv(x, w, b, stride, pad):
    (sh, sw), (ph, pw) = stride, pad
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    o, _, kh, kw = w.shape
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    out = np.zeros((x.shape[0], o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return out if b is None else out + b[None, :, None, None]


def ref_pool(x, k, s, pad, reduce, fill):
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=fill)
    oh, ow = (xp.shape[2] - k) // s + 1, (xp.shape[3] - k) // s + 1
    out = np.zeros(x.shape[:2] + (oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = reduce(xp[:, :, i * s:i * s + k, j * s:j * s + k], axis=(2, 3))
    return out


# (N, C, H, W, O, kernel, stride, padding): square and rectangular, strided, padded.
CONV_CASES = [
    (2, 3, 7, 6, 4, 3, 1, 0),
    (2, 3, 7, 6, 4, 3, 1, 1),
    (3, 2, 9, 8, 5, (3, 2), 2, (1, 0)),
    (1, 4, 6, 6, 2, 2, 2, 0),
    (2, 1, 5, 5, 3, 5, 1, 2),
    (2, 2, 8, 7, 3, 3, (2, 3), 1),
    (1, 1, 1, 1, 2, 1, 1, 0),
]


def pair(v):
    return v if isinstance(v, tuple) else (v, v)


@pytest.mark.task("09.1")
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 2), pw=st.integers(0, 2))
def test_im2col_columns_are_the_receptive_fields(n, c, h, w, kh, kw, sh, sw, ph, pw):
    assume(kh <= h + 2 * ph and kw <= w + 2 * pw)
    x = np.random.default_rng(0).standard_normal((n, c, h, w))
    cols = im2col(x, (kh, kw), (sh, sw), (ph, pw))
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    assert cols.shape == (c * kh * kw, oh * ow * n)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    blocks = cols.reshape(c, kh, kw, oh, ow, n)
    for i in range(oh):
        for j in range(ow):
            expected = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].transpose(1, 2, 3, 0)
            np.testing.assert_array_equal(blocks[:, :, :, i, j, :], expected)


@pytest.mark.task("09.2")
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(2, 7), w=st.integers(2, 7),
       k=st.integers(1, 3), s=st.integers(1, 3), p=st.integers(0, 2), seed=st.integers(0, 99))
def test_col2im_is_the_adjoint_of_im2col(n, c, h, w, k, s, p, seed):
    # <im2col(x), y> == <x, col2im(y)> for all x, y: col2im must add overlapping copies.
    assume(k <= min(h, w) + 2 * p)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    args = ((k, k), (s, s), (p, p))
    y = rng.standard_normal(im2col(x, *args).shape)
    back = col2im(y, x.shape, *args)
    assert back.shape == x.shape
    assert np.isclose(np.sum(im2col(x, *args) * y), np.sum(x * back), rtol=1e-10, atol=1e-10)


@pytest.mark.task("09.3")
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_forward_matches_the_loop_definition(case, rng):
    n, c, h, w, o, k, s, p = case
    kh, kw = pair(k)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((o, c, kh, kw)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    out = conv2d(Tensor(x), Tensor(wt), Tensor(b), s, p)
    np.testing.assert_allclose(out.data, ref_conv(x, wt, b, pair(s), pair(p)), rtol=RTOL, atol=ATOL)
    no_bias = conv2d(Tensor(x), Tensor(wt), None, s, p)
    np.testing.assert_allclose(no_bias.data, ref_conv(x, wt, None, pair(s), pair(p)), rtol=RTOL, atol=ATOL)


@pytest.mark.task("09.3")
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_gradients_match_finite_differences(case, rng):
    n, c, h, w, o, k, s, p = case
    kh, kw = pair(k)
    x, wt, b = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, kh, kw)), rng.standard_normal(o)
    assert gradcheck(lambda x_, w_, b_: conv2d(x_, w_, b_, s, p), [x, wt, b])
    assert gradcheck(lambda x_, w_: conv2d(x_, w_, None, s, p), [x, wt])


@pytest.mark.task("09.3")
def test_conv2d_skips_the_input_gradient_when_not_needed(rng):
    x = Tensor(rng.standard_normal((2, 1, 5, 5)))
    conv = Conv2d(1, 2, 3)
    conv(x).sum().backward()
    assert x.grad is None and conv.weight.grad is not None and conv.bias.grad is not None


@pytest.mark.task("09.3")
def test_conv2d_accepts_non_contiguous_input(rng):
    x = rng.standard_normal((5, 5, 2, 3)).astype(np.float32).transpose(2, 3, 0, 1)  # (2, 3, 5, 5) view
    wt = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    out = conv2d(Tensor(x), Tensor(wt), None, 1, 1)
    np.testing.assert_allclose(out.data, ref_conv(x, wt, None, (1, 1), (1, 1)), rtol=RTOL, atol=ATOL)


@pytest.mark.task("09.3")
def test_conv2d_errors_name_the_shapes():
    conv = Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"3 input channels.*\(2, 1, 8, 8\)"):
        conv(Tensor(np.zeros((2, 1, 8, 8))))
    with pytest.raises(ValueError, match=r"kernel 3x3 is larger than the padded input 2x2.*\(1, 3, 2, 2\)"):
        conv(Tensor(np.zeros((1, 3, 2, 2))))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*\(3, 8, 8\)"):
        conv(Tensor(np.zeros((3, 8, 8))))
    # Padding makes room: 2x2 input, padding 1 -> 4x4, a 3x3 kernel fits.
    assert Conv2d(3, 4, 3, padding=1)(Tensor(np.zeros((1, 3, 2, 2)))).shape == (1, 4, 2, 2)


@pytest.mark.task("09.4")
def test_conv2d_layer_parameters_and_init():
    manual_seed(0)
    conv = Conv2d(4, 16, (3, 5), stride=2, padding=(1, 2))
    assert conv.kernel_size == (3, 5) and conv.stride == (2, 2) and conv.padding == (1, 2)
    assert [name for name, _ in conv.named_parameters()] == ["weight", "bias"]
    assert conv.weight.shape == (16, 4, 3, 5) and conv.bias.shape == (16,)
    assert conv.weight.data.dtype == np.float32
    bound = 1 / math.sqrt(4 * 3 * 5)
    w = conv.weight.data
    assert np.abs(w).max() <= bound and np.abs(conv.bias.data).max() <= bound
    # U(-b, b) has standard deviation b / sqrt(3); 960 draws pin it to a few percent.
    assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.1
    assert Conv2d(4, 16, 3, bias=False).bias is None
    assert [n for n, _ in Conv2d(4, 16, 3, bias=False).named_parameters()] == ["weight"]


@pytest.mark.task("09.4")
def test_conv2d_layer_init_is_seeded():
    manual_seed(3)
    a = Conv2d(2, 3, 3).weight.data.copy()
    manual_seed(3)
    np.testing.assert_array_equal(Conv2d(2, 3, 3).weight.data, a)


@pytest.mark.parametrize("kwargs, error", [
    (dict(in_channels=0, out_channels=2, kernel_size=3), ValueError),
    (dict(in_channels=1, out_channels=2, kernel_size=0), ValueError),
    (dict(in_channels=1, out_channels=2, kernel_size=3, stride=0), ValueError),
    (dict(in_channels=1, out_channels=2, kernel_size=3, padding=-1), ValueError),
    (dict(in_channels=1, out_channels=2, kernel_size=2.5), TypeError),
    (dict(in_channels=1, out_channels=2, kernel_size=(3, 3, 3)), TypeError),
])
def test_conv2d_layer_rejects_bad_hyper_parameters(kwargs, error):
    with pytest.raises(error, match=r"must be"):
        Conv2d(**kwargs)


@pytest.mark.task("09.4")
def test_conv2d_layer_follows_a_replaced_weight(rng):
    # Model surgery (Module 16): a smaller weight swapped in is used as it is.
    conv = Conv2d(3, 8, 3, padding=1)
    keep = [0, 2, 5]
    conv.weight = Tensor(conv.weight.data[keep], requires_grad=True)
    conv.bias = Tensor(conv.bias.data[keep], requires_grad=True)
    assert conv(Tensor(rng.standard_normal((2, 3, 4, 4)))).shape == (2, 3, 4, 4)


@pytest.mark.task("09.5")
@pytest.mark.parametrize("k, s, p", [(2, None, 0), (2, 1, 0), (3, 2, 1), (3, 1, 1), (2, 3, 1), (4, 2, 2)])
def test_max_pool2d_forward_and_gradient(k, s, p, rng):
    x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) / 10.0 - 10  # distinct values, all negative
    out = max_pool2d(Tensor(x), k, s, p)
    expected = ref_pool(x, k, s or k, p, np.max, -np.inf)
    np.testing.assert_allclose(out.data, expected, rtol=RTOL, atol=ATOL)
    assert gradcheck(lambda t: max_pool2d(t, k, s, p), [x])


@pytest.mark.task("09.5")
def test_max_pool2d_ties_send_the_gradient_to_the_first_position():
    x = Tensor(np.ones((1, 1, 4, 4)), requires_grad=True)
    max_pool2d(x, 2).sum().backward()
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1
    np.testing.assert_array_equal(x.grad[0, 0], expected)


@pytest.mark.task("09.5")
def test_max_pool2d_overlapping_windows_add_up():
    x = Tensor(np.array([[[[0.0, 5.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]]), requires_grad=True)
    max_pool2d(x, 2, stride=1).sum().backward()  # the 5 wins both top windows
    assert x.grad[0, 0, 0, 1] == 2.0 and x.grad.sum() == 4.0


def test_pooling_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"kernel 3x3 is larger than the padded input 2x2"):
        MaxPool2d(3)(Tensor(np.zeros((1, 1, 2, 2))))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*\(4, 4\)"):
        AvgPool2d(2)(Tensor(np.zeros((4, 4))))
    with pytest.raises(ValueError, match=r"padding must be at most half"):
        MaxPool2d(2, padding=2)(Tensor(np.zeros((1, 1, 4, 4))))


@pytest.mark.task("09.6")
@pytest.mark.parametrize("k, s, p", [(2, None, 0), (3, 2, 1), (3, 1, 1), (2, 3, 0)])
def test_avg_pool2d_forward_and_gradient(k, s, p, rng):
    x = rng.standard_normal((2, 3, 7, 6))
    out = avg_pool2d(Tensor(x), k, s, p)
    np.testing.assert_allclose(out.data, ref_pool(x, k, s or k, p, np.mean, 0.0), rtol=RTOL, atol=ATOL)
    assert gradcheck(lambda t: avg_pool2d(t, k, s, p), [x])


@pytest.mark.task("09.7")
def test_flatten_keeps_the_batch_and_c_order(rng):
    x = Tensor(rng.standard_normal((3, 4, 2, 5)), requires_grad=True)
    y = Flatten()(x)
    np.testing.assert_array_equal(y.data, x.data.reshape(3, 40))
    assert gradcheck(lambda t: Flatten()(t), [rng.standard_normal((2, 3, 2, 2))])
    with pytest.raises(ValueError, match=r"\(5,\)"):
        Flatten()(Tensor(np.zeros(5)))
    assert Flatten()(Tensor(np.zeros((0, 4, 2, 5)))).shape == (0, 40), "an empty batch"


@pytest.mark.task("09.8")
def test_batch_norm2d_training_normalises_and_updates_running_statistics(rng):
    bn = BatchNorm2d(3, momentum=0.2)
    x = rng.standard_normal((8, 3, 4, 4)) * [[[[2.0]], [[0.5]], [[3.0]]]] + 1.5
    rm, rv = np.zeros(3), np.ones(3)
    for _ in range(3):  # the running averages compound over steps
        y = bn(Tensor(x)).data
        rm = 0.8 * rm + 0.2 * x.mean(axis=(0, 2, 3))
        rv = 0.8 * rv + 0.2 * x.var(axis=(0, 2, 3), ddof=1)  # unbiased, as PyTorch
    expected = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(bn.running_mean.data, rm, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(bn.running_var.data, rv, rtol=RTOL, atol=ATOL)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var"]


@pytest.mark.task("09.8")
def test_batch_norm2d_eval_uses_running_statistics_and_changes_nothing(rng):
    bn = BatchNorm2d(2)
    bn.running_mean.data[...] = [1.0, -2.0]
    bn.running_var.data[...] = [4.0, 0.25]
    bn.weight.data[...] = [2.0, 3.0]
    bn.bias.data[...] = [0.5, -0.5]
    bn.eval()
    x = rng.standard_normal((1, 2, 3, 3))  # a single image works in eval mode
    y = bn(Tensor(x)).data
    col = lambda *v: np.array(v).reshape(1, -1, 1, 1)  # noqa: E731 - a per-channel constant
    expected = (x - col(1.0, -2.0)) / np.sqrt(col(4.0, 0.25) + 1e-5) * col(2.0, 3.0) + col(0.5, -0.5)
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(bn.running_mean.data, [1.0, -2.0])


@pytest.mark.task("09.8")
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm2d_gradients_match_finite_differences(training, rng):
    x = rng.standard_normal((3, 2, 3, 2)) * 2 + 1
    g, b = rng.standard_normal(2), rng.standard_normal(2)
    rm, rv = Tensor(rng.standard_normal(2)), Tensor(rng.uniform(0.5, 2.0, 2))
    assert gradcheck(lambda x_, g_, b_: batch_norm2d(x_, g_, b_, rm, rv, training, momentum=0.0), [x, g, b])


def test_batch_norm2d_errors():
    with pytest.raises(ValueError, match=r"4 input channels.*\(2, 3, 4, 4\)"):
        BatchNorm2d(4)(Tensor(np.zeros((2, 3, 4, 4))))
    with pytest.raises(ValueError, match=r"more than 1 value per channel"):
        BatchNorm2d(3)(Tensor(np.zeros((1, 3, 1, 1))))
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\].*1\.5"):
        BatchNorm2d(3, momentum=1.5)
    with pytest.raises(ValueError, match=r"momentum.*None"):
        BatchNorm2d(3, momentum=None)
    with pytest.raises(ValueError, match=r"eps must be"):
        BatchNorm2d(3, eps=0)
    with pytest.raises(ValueError, match=r"eps must be a number > 0, got True"):
        BatchNorm2d(3, eps=True)  # a bool is an int to Python, not a number to us
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\].*got False"):
        BatchNorm2d(3, momentum=False)


# --- PyTorch as a second opinion ---------------------------------------------------------

def _copy_to_torch(torch, ours, theirs):
    with torch.no_grad():
        for (_, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
            q.copy_(torch.from_numpy(p.data))


def _compare_with_torch(torch, ours, theirs, x, rng, atol=ATOL, grad_rtol=RTOL):
    """Run both layers on `x`, send the same random output gradient back, compare output and input gradient."""
    xo, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yo, yt = ours(xo), theirs(xt)
    g = rng.standard_normal(yo.shape).astype(np.float32)
    yo.backward(g)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(yo.data, yt.detach().numpy(), rtol=RTOL, atol=atol)
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=grad_rtol, atol=atol)


@pytest.mark.task("09.3")
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_pytorch(case, rng):
    torch = pytest.importorskip("torch")
    n, c, h, w, o, k, s, p = case
    ours = Conv2d(c, o, k, s, p)
    theirs = torch.nn.Conv2d(c, o, k, s, p)
    _copy_to_torch(torch, ours, theirs)
    _compare_with_torch(torch, ours, theirs, rng.standard_normal((n, c, h, w)).astype(np.float32), rng)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=RTOL, atol=1e-4)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=RTOL, atol=1e-4)


# Max pooling is Task 09.5, average pooling Task 09.6: each case carries its own task.
@pytest.mark.parametrize("pool, k, s, p", [
    *(pytest.param("max", *ksp, marks=pytest.mark.task("09.5")) for ksp in [(2, None, 0), (3, 2, 1), (3, 1, 1)]),
    *(pytest.param("avg", *ksp, marks=pytest.mark.task("09.6")) for ksp in [(2, None, 0), (3, 2, 1), (3, 1, 1)]),
])
def test_pooling_matches_pytorch(pool, k, s, p, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    x[0, 0, :2, :2] = 1.0  # a tie
    ours = (MaxPool2d if pool == "max" else AvgPool2d)(k, s, p)
    theirs = (torch.nn.MaxPool2d if pool == "max" else torch.nn.AvgPool2d)(k, s, p)
    _compare_with_torch(torch, ours, theirs, x, rng)


@pytest.mark.task("09.8")
def test_batch_norm2d_matches_pytorch_in_train_and_eval(rng):
    torch = pytest.importorskip("torch")
    ours, theirs = BatchNorm2d(4, momentum=0.3), torch.nn.BatchNorm2d(4, momentum=0.3)
    ours.weight.data[...] = rng.uniform(0.5, 2, 4)
    ours.bias.data[...] = rng.standard_normal(4)
    _copy_to_torch(torch, ours, theirs)
    for step in range(3):
        x = (rng.standard_normal((5, 4, 3, 3)) * (step + 1) + step).astype(np.float32)
        _compare_with_torch(torch, ours, theirs, x, rng, atol=1e-4, grad_rtol=1e-3)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(ours.running_mean.data, theirs.running_mean.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ours.running_var.data, theirs.running_var.numpy(), rtol=RTOL, atol=ATOL)
    ours.eval()
    theirs.eval()
    _compare_with_torch(torch, ours, theirs, rng.standard_normal((2, 4, 3, 3)).astype(np.float32), rng, atol=1e-4)


@pytest.mark.task("09.3")
def test_small_cnn_matches_pytorch_end_to_end(rng):
    torch = pytest.importorskip("torch")
    from tinytorch.core.activations import ReLU
    from tinytorch.core.layers import Linear

    ours = Sequential(Conv2d(1, 8, 3, padding=1), BatchNorm2d(8), ReLU(), MaxPool2d(2),
                      Conv2d(8, 16, 3, padding=1), ReLU(), AvgPool2d(2), Flatten(), Linear(64, 10))
    nn = torch.nn
    theirs = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                           nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 10))
    _copy_to_torch(torch, ours, theirs)
    x = rng.random((16, 1, 8, 8), dtype=np.float32)
    yo, yt = ours(Tensor(x)), theirs(torch.from_numpy(x))
    yo.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(yo.data, yt.detach().numpy(), rtol=1e-3, atol=1e-4)
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-3, atol=1e-4, err_msg=name)


# The reprs are given code; the test needs Conv2d's constructor (Task 09.4), not Flatten's forward.
@pytest.mark.task("09.4")
def test_layers_are_modules_with_readable_reprs():
    model = Sequential(Conv2d(1, 2, 3), MaxPool2d(2), AvgPool2d(2, 1), Flatten(), BatchNorm2d(2))
    assert all(isinstance(m, Module) for m in model)
    text = repr(model)
    for part in ("Conv2d(1, 2, kernel_size=(3, 3)", "MaxPool2d(kernel_size=(2, 2)", "AvgPool2d(", "Flatten()",
                 "BatchNorm2d(2"):
        assert part in text, text


@pytest.mark.task("09.3")
def test_no_grad_records_nothing(rng):
    conv = Conv2d(1, 2, 3)
    with no_grad():
        y = conv(Tensor(rng.standard_normal((1, 1, 4, 4))))
    assert not y.requires_grad
