# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Module 09: Spatial
#
# > Convolution, pooling, flattening and batch normalisation for images, each with its backward pass.
#
# A `Linear` layer treats an image as a bag of unrelated numbers: move a digit one pixel
# to the right and every input feature changes. A convolution slides one small filter
# over the whole image, so the same stroke detector works everywhere, and it needs
# `out * in * kh * kw` weights instead of one per pixel pair. Pooling then keeps the
# strongest response in each neighbourhood, so small shifts stop mattering.
#
# The catch is speed. A direct convolution is six nested loops; in Python that is
# hopeless. The classic trick is **im2col**: copy every receptive field
# into one column of a matrix, and the whole convolution becomes *one* matrix product,
# which NumPy hands to an optimised BLAS. Its backward pass is two more matrix products
# and **col2im**, the reverse copy.
#
# You will build:
#
# 1. `im2col` and `col2im`, one strided slice per kernel offset;
# 2. `conv2d` (forward and backward) and the `Conv2d` layer with PyTorch's initialisation;
# 3. `max_pool2d` / `MaxPool2d` and `avg_pool2d` / `AvgPool2d`;
# 4. `Flatten`;
# 5. `batch_norm2d` / `BatchNorm2d`, with training and evaluation behaviour.
#
# Given beside this lesson, no task: `recipes_given.py` (`tinytorch.recipes`), the digits
# MLP and CNN and the one recipe that trains them, which every later module, the demo
# and the benchmarks use, so their figures come from the same networks trained the same way.
#
# Shapes follow PyTorch: images are `(N, C, H, W)` (batch, channels, height, width) and
# a convolution weight is `(out_channels, in_channels, kh, kw)`. Axis 0 of every weight
# is its output unit, a *filter*: Module 16 prunes whole filters along that axis.

# %%
#| default_exp core.spatial

# %%
#| export
from __future__ import annotations

import math

import numpy as np

from tinytorch.core.checks import check_int, check_number, check_pair
from tinytorch.core.layers import Module
from tinytorch.core.tensor import Tensor, get_rng

# %% [markdown]
# ## Checking arguments and shapes
#
# Kernel sizes, strides and paddings may be given as one int or as a pair `(h, w)`.
# Shape mistakes are the commonest bug in a CNN, so every layer checks its input and
# says which shapes disagree instead of failing deep inside NumPy.
#
# The output size along one axis is the number of window positions that fit:
#
# $$\text{out} = \left\lfloor \frac{\text{in} + 2\,\text{padding} - \text{kernel}}{\text{stride}} \right\rfloor + 1$$

# %%
#| export
def _pair(value: int | tuple[int, int], name: str, minimum: int) -> tuple[int, int]:
    """`(h, w)` from an int or a pair of ints, each at least `minimum` (Module 01's `check_pair`)."""
    return check_pair(name, value, minimum)


def _int(value: int, name: str, minimum: int) -> int:
    """`value` as an int, checked to be at least `minimum`."""
    return check_int(name, value, minimum)


def _as_tensor(x: Tensor | np.ndarray) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _check_image(op: str, shape: tuple[int, ...], channels: int | None = None) -> None:
    """Raise a ValueError naming the shapes unless `shape` is `(N, channels, H, W)`."""
    if len(shape) != 4:
        raise ValueError(f"{op} expects input of shape (N, C, H, W), got shape {tuple(shape)}")
    if channels is not None and shape[1] != channels:
        raise ValueError(
            f"{op} expects {channels} input channels, got input of shape {tuple(shape)} "
            f"with {shape[1]} channels")


def conv_output_size(op: str, shape: tuple[int, ...], kernel: tuple[int, int],
                     stride: tuple[int, int], padding: tuple[int, int]) -> tuple[int, int]:
    """Output height and width of a sliding window over an `(N, C, H, W)` input.

    Raises:
        ValueError: the kernel does not fit in the padded input.
    """
    h, w = shape[2] + 2 * padding[0], shape[3] + 2 * padding[1]
    if kernel[0] > h or kernel[1] > w:
        raise ValueError(
            f"{op}: kernel {kernel[0]}x{kernel[1]} is larger than the padded input {h}x{w} "
            f"(input shape {tuple(shape)}, padding {padding})")
    return (h - kernel[0]) // stride[0] + 1, (w - kernel[1]) // stride[1] + 1


def pad2d(x: np.ndarray, padding: tuple[int, int], value: float = 0.0,
          axes: tuple[int, int] = (2, 3)) -> np.ndarray:
    """`x` with `padding` rows and columns of `value` added on both sides of its two image `axes`."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    shape, inner = list(x.shape), [slice(None)] * x.ndim
    for axis, p in zip(axes, padding):
        shape[axis] += 2 * p
        inner[axis] = slice(p, p + x.shape[axis])
    # Filling a fresh array and copying in is several times faster than np.pad.
    out = np.full(shape, value, dtype=x.dtype)
    out[tuple(inner)] = x
    return out


# %% [markdown]
# ## im2col: every receptive field as a column
#
# We lay the receptive fields out as a matrix `cols` with one **row per weight
# position** `(c, u, v)` (`C*kh*kw` rows) and one **column per output pixel**
# (`OH*OW*N` columns). A filter flattened to `C*kh*kw` numbers, dotted with a column, is
# that filter's output at that pixel, so all filters at all pixels is the single product
# `W2 @ cols`, with `W2 = weight.reshape(O, C*kh*kw)`.
#
# How to fill it without a loop over pixels: fix one kernel offset `(u, v)`. Over all
# windows, that offset reads the strided plane
# `xp[:, u : u + sh*OH : sh, v : v + sw*OW : sw]` of the padded input, one pixel per
# window, already in window order. So `cols`, seen as `(C, kh, kw, OH, OW, N)`, is
# filled by `kh*kw` slice copies, `cols[:, u, v] = plane(u, v)`: the same loop col2im
# runs below, with `=` where col2im has `+=`.
#
# `# NOTE:` these copies are the expensive step (every input pixel is copied `kh*kw`
# times), and NumPy copies fastest when the innermost axes are long and contiguous.
# So we first move the batch axis **last**, `(N, C, H, W) -> (C, H, W, N)`, and order the
# columns as `(oh, ow, n)`: a window row of `OW` positions for all `N` images is then
# one contiguous run of `OW*N` floats (with stride 1), instead of `N` short runs of
# `OW`; the arithmetic is the same. (NumPy's `sliding_window_view`
# builds the same windows as a view, but a call costs several microseconds of Python
# before anything is copied: on the digits CNN's small images that was a sizeable
# share of the whole im2col, paid equally by a layer with half its filters removed.)

# %% nbgrader={"grade": false, "grade_id": "im2col", "solution": true}
#| export
def im2col(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
           padding: tuple[int, int]) -> np.ndarray:
    """The receptive fields of `x (N, C, H, W)` as the columns of a `(C*kh*kw, OH*OW*N)` matrix.

    Task 09.1: move the batch axis last and pad; for each kernel offset `(u, v)`, copy
    its strided plane of the padded input into `cols[:, u, v]`, with `cols` shaped
    `(C, kh, kw, OH, OW, N)`; reshape to two axes.
    """
    ### BEGIN SOLUTION
    kh, kw = kernel
    sh, sw = stride
    # NOTE: the transpose is a view; copied once into its own memory order, each of the
    # kh*kw plane copies below reads whole runs of N floats instead of gathering one
    # float per image (LeNet-5's first convolution: 0.38 -> 0.15 ms at batch 64).
    xp = np.ascontiguousarray(pad2d(x.transpose(1, 2, 3, 0), padding, axes=(1, 2)))  # (C, H+2ph, W+2pw, N)
    c, hp, wp, n = xp.shape
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    cols = np.empty((c, kh, kw, oh, ow, n), dtype=x.dtype)
    for u in range(kh):
        for v in range(kw):
            cols[:, u, v] = xp[:, u:u + sh * oh:sh, v:v + sw * ow:sw]
    return cols.reshape(c * kh * kw, oh * ow * n)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-im2col", "locked": true, "points": 2}
def test_unit_im2col():
    """Task 09.1"""
    x = np.arange(2 * 3 * 5 * 4, dtype=np.float64).reshape(2, 3, 5, 4)
    cols = im2col(x, (3, 2), (2, 1), (1, 0))
    n, oh, ow = 2, (5 + 2 - 3) // 2 + 1, (4 - 2) // 1 + 1
    assert cols.shape == (3 * 3 * 2, oh * ow * n), cols.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)))
    # Column of sample 1 at output pixel (1, 2): the patch at rows 2..4, columns 2..3.
    col = cols[:, (1 * ow + 2) * n + 1]
    np.testing.assert_array_equal(col, xp[1, :, 2:5, 2:4].reshape(-1))


# %% [markdown]
# ## col2im: the way back
#
# In the backward pass we get `dL/dcols`, one gradient per copy, and need `dL/dx`. A
# pixel copied into nine columns receives the **sum** of those nine gradients: col2im is
# the adjoint (transpose) of im2col, so it must add, never overwrite.
#
# We loop over the `kh*kw` kernel offsets `(u, v)`, never over pixels. For a fixed
# offset, the windows read the strided plane `xp[:, u : u + sh*OH : sh, v : v + sw*OW : sw]`,
# one pixel per window, so one vectorised `+=` adds that offset's gradients for all
# windows at once: nine NumPy operations for a 3x3 kernel, whatever the image size.
# The result is moved back from `(C, H, W, N)` to `(N, C, H, W)` as a view (no copy).

# %% nbgrader={"grade": false, "grade_id": "col2im", "solution": true}
#| export
def col2im(cols: np.ndarray, shape: tuple[int, int, int, int], kernel: tuple[int, int],
           stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Sum the columns of `cols (C*kh*kw, OH*OW*N)` back onto an image of `shape`: im2col's adjoint.

    Task 09.2: reshape to `(C, kh, kw, OH, OW, N)`, add each kernel offset's plane into a
    padded `(C, H, W, N)` zero image, crop the padding, return it as `(N, C, H, W)`.
    """
    n, c, h, w = shape
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    oh, ow = conv_output_size("col2im", shape, kernel, stride, padding)
    ### BEGIN SOLUTION
    blocks = cols.reshape(c, kh, kw, oh, ow, n)
    xp = np.zeros((c, h + 2 * ph, w + 2 * pw, n), dtype=cols.dtype)
    for u in range(kh):
        for v in range(kw):
            xp[:, u:u + sh * oh:sh, v:v + sw * ow:sw] += blocks[:, u, v]
    return xp[:, ph:ph + h, pw:pw + w].transpose(3, 0, 1, 2)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-col2im", "locked": true, "points": 2}
def test_unit_col2im():
    """Task 09.2"""
    rng = np.random.default_rng(0)
    shape, args = (2, 3, 6, 5), ((3, 3), (2, 1), (1, 2))
    x = rng.standard_normal(shape)
    cols = rng.standard_normal(im2col(x, *args).shape)
    # Adjoint identity: <im2col(x), cols> == <x, col2im(cols)>.
    lhs = np.sum(im2col(x, *args) * cols)
    rhs = np.sum(x * col2im(cols, shape, *args))
    assert np.isclose(lhs, rhs), f"col2im is not im2col's adjoint: {lhs} vs {rhs}"


# %% [markdown]
# ## Convolution forward and backward
#
# With `cols` and `W2` the forward pass is `out2 = W2 @ cols + b[:, None]`, shape
# `(O, OH*OW*N)`, reshaped to `(O, OH, OW, N)` and viewed as `(N, O, OH, OW)`. (That
# view is not C-contiguous; NumPy handles any memory order, and when the next
# convolution moves the batch axis last again it gets a contiguous array for free.)
# For the backward pass, arrange the incoming gradient the same way, `g2 (O, OH*OW*N)`:
#
# * `dW2 = g2 @ cols.T` (the same rule as a Linear layer's weight gradient),
# * `db = g2.sum(axis=1)`,
# * `dcols = W2.T @ g2`, then `dx = col2im(dcols)`.
#
# The work is three matrix products whose size is proportional to the number of
# filters `O`, plus the copies of im2col and col2im, proportional to the input channels
# `C`: a network with half its filters removed does about half the work. Skipping `dx`
# when the input does not need a gradient (the raw image) saves the first layer's col2im.

# %% nbgrader={"grade": false, "grade_id": "conv2d", "solution": true}
#| export
def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None,
           stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0) -> Tensor:
    """2-D cross-correlation of `x (N, C, H, W)` with `weight (O, C, kh, kw)`: one matmul over im2col.

    Task 09.3: forward with `im2col` and one matrix product, backward with two more and
    `col2im`, joined into the graph by `Tensor.from_op`.

    Args:
        x: input images `(N, C, H, W)`.
        weight: filters `(O, C, kh, kw)`.
        bias: `(O,)` or `None`.
        stride, padding: an int or an `(h, w)` pair.

    Returns:
        `(N, O, OH, OW)`.

    Raises:
        ValueError: `x` is not 4-D, its channels differ from the weight's, or the kernel
            is larger than the padded input.
    """
    x = _as_tensor(x)
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    o, c, kh, kw = weight.shape
    _check_image(f"conv2d with weight {tuple(weight.shape)}", x.shape, c)
    oh, ow = conv_output_size("conv2d", x.shape, (kh, kw), stride, padding)
    n = x.shape[0]
    ### BEGIN SOLUTION
    cols = im2col(x.data, (kh, kw), stride, padding)
    w2 = weight.data.reshape(o, c * kh * kw)
    out = w2 @ cols
    if bias is not None:
        out += bias.data[:, None]
    out = out.reshape(o, oh, ow, n).transpose(3, 0, 1, 2)

    def backward(grad: np.ndarray) -> tuple:
        # NOTE: the incoming gradient may be a broadcast view with zero strides (the
        # backward of a sum); BLAS cannot read that, and NumPy would fall back to a
        # matmul loop many times slower. ascontiguousarray costs nothing when it is not needed.
        g2 = np.ascontiguousarray(grad.transpose(1, 2, 3, 0)).reshape(o, oh * ow * n)
        gx = col2im(w2.T @ g2, x.shape, (kh, kw), stride, padding) if x.requires_grad else None
        gw = (g2 @ cols.T).reshape(weight.shape) if weight.requires_grad else None
        if bias is None:
            return gx, gw
        return gx, gw, g2.sum(axis=1)

    parents = (x, weight) if bias is None else (x, weight, bias)
    return Tensor.from_op(out, parents, backward, op="conv2d")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-conv2d", "locked": true, "points": 3}
def _direct_conv(x, w, b, stride, pad):
    """Slow, obviously-correct reference: the nested-loop definition."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    o, _, kh, kw = w.shape
    oh, ow = (xp.shape[2] - kh) // stride + 1, (xp.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def test_unit_conv2d():
    """Task 09.3"""
    from tinytorch.core.autograd import gradcheck

    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    for stride, pad in ((1, 0), (2, 1)):
        out = conv2d(Tensor(x), Tensor(w), Tensor(b), stride, pad)
        np.testing.assert_allclose(out.data, _direct_conv(x, w, b, stride, pad), rtol=1e-4, atol=1e-4)
        assert gradcheck(lambda x_, w_, b_: conv2d(x_, w_, b_, stride, pad), [x, w, b])


# %% [markdown]
# ## The Conv2d layer
#
# The layer only owns the weights and the hyper-parameters; `forward` calls `conv2d`.
# PyTorch initialises both weight and bias from `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with
# `fan_in = in_channels * kh * kw` (that is what its `kaiming_uniform_(a=sqrt(5))`
# amounts to). Using the same rule makes results comparable with PyTorch code.
#
# The forward pass reads the shapes from `self.weight`, not from `in_channels`: after
# Module 16 swaps in a smaller weight, the layer still works.

# %% nbgrader={"grade": false, "grade_id": "conv2d-layer", "solution": true}
#| export
class Conv2d(Module):
    """A 2-D convolution layer: `weight (out, in, kh, kw)`, `bias (out,)`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 bias: bool = True) -> None:
        """Task 09.4: store the hyper-parameters; create weight and bias with PyTorch's default init.

        Raises:
            ValueError / TypeError: a channel count, kernel size or stride below 1, a
                negative padding, or a value that is not an int (or pair of ints).
        """
        super().__init__()
        self.in_channels = _int(in_channels, "in_channels", 1)
        self.out_channels = _int(out_channels, "out_channels", 1)
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)
        ### BEGIN SOLUTION
        kh, kw = self.kernel_size
        bound = 1.0 / math.sqrt(self.in_channels * kh * kw)
        rng = get_rng()
        shape = (self.out_channels, self.in_channels, kh, kw)
        self.weight = Tensor(rng.uniform(-bound, bound, shape).astype(np.float32), requires_grad=True)
        self.bias = (Tensor(rng.uniform(-bound, bound, self.out_channels).astype(np.float32), requires_grad=True)
                     if bias else None)
        ### END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        """Convolve `x (N, in, H, W)` into `(N, out, OH, OW)`."""
        return conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")


# %% nbgrader={"grade": true, "grade_id": "test-conv2d-layer", "locked": true, "points": 1}
def test_unit_conv2d_layer():
    """Task 09.4"""
    conv = Conv2d(3, 8, 5, padding=2)
    assert conv.weight.shape == (8, 3, 5, 5) and conv.bias.shape == (8,)
    bound = 1 / math.sqrt(3 * 25)
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.weight.data).max() > 0.8 * bound
    assert conv(Tensor(np.zeros((2, 3, 7, 6), np.float32))).shape == (2, 8, 7, 6)
    try:
        conv(Tensor(np.zeros((2, 1, 7, 6), np.float32)))
    except ValueError as err:
        assert "(2, 1, 7, 6)" in str(err), err
    else:
        raise AssertionError("wrong input channels must raise ValueError")


# %% [markdown]
# ## Pooling
#
# Max pooling keeps the largest value of each window; average pooling its mean. The
# stride defaults to the kernel size (non-overlapping windows), as in PyTorch.
#
# The same loop over kernel offsets as in col2im does the work: each offset contributes
# one strided plane, and `np.maximum` folds the planes into the window maxima. In the
# backward pass the gradient of each window goes only to the position that won: going
# through the planes in order, a window's winner is the first plane equal to its
# maximum (ties go to the first position, as in PyTorch). Overlapping windows add up.
# Finding the winners in the backward pass, rather than recording them in the forward
# pass, keeps evaluation (forward only) as cheap as possible.
#
# `# NOTE:` padding for max pooling must be `-inf`, not 0, or a window of negative
# numbers would "see" a maximum of 0 that is not in the image. Average pooling pads
# with zeros and divides by the full window size (PyTorch's `count_include_pad=True`).

# %%
#| export
def _pool_setup(op: str, x: Tensor, kernel_size, stride, padding):
    """Checked `(kernel, stride, padding, (OH, OW))` for a pooling op."""
    kernel = _pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else _pair(stride, "stride", 1)
    padding = _pair(padding, "padding", 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding must be at most half the kernel size {kernel}, got {padding}")
    _check_image(op, x.shape)
    return kernel, stride, padding, conv_output_size(op, x.shape, kernel, stride, padding)


# %% nbgrader={"grade": false, "grade_id": "max-pool2d", "solution": true}
#| export
def max_pool2d(x: Tensor, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
               padding: int | tuple[int, int] = 0) -> Tensor:
    """The maximum of each `kernel_size` window of `x (N, C, H, W)`; the gradient goes to the winner.

    Task 09.5: fold the kernel offsets' planes with `np.maximum`; backward sends each
    window's gradient to its first maximal position.
    """
    x = _as_tensor(x)
    kernel, stride, padding, (oh, ow) = _pool_setup("max_pool2d", x, kernel_size, stride, padding)
    ### BEGIN SOLUTION
    (kh, kw), (sh, sw) = kernel, stride
    xp = pad2d(x.data, padding, value=-np.inf)
    planes = [xp[:, :, u:u + sh * oh:sh, v:v + sw * ow:sw] for u in range(kh) for v in range(kw)]
    out = planes[0].copy(order="K")  # "K" keeps the input's memory order
    for plane in planes[1:]:
        np.maximum(out, plane, out=out)

    def backward(grad: np.ndarray) -> tuple:
        gp = np.zeros(xp.shape, dtype=grad.dtype)
        free = np.ones(out.shape, dtype=bool)  # windows whose winner is not yet found
        for k, plane in enumerate(planes):
            u, v = divmod(k, kw)
            won = (plane == out) & free  # the first offset holding the maximum wins
            free ^= won
            gp[:, :, u:u + sh * oh:sh, v:v + sw * ow:sw] += grad * won
        return (gp[:, :, padding[0]:padding[0] + x.shape[2], padding[1]:padding[1] + x.shape[3]],)

    return Tensor.from_op(out, (x,), backward, op="max_pool2d")
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "avg-pool2d", "solution": true}
#| export
def avg_pool2d(x: Tensor, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
               padding: int | tuple[int, int] = 0) -> Tensor:
    """The mean of each `kernel_size` window of `x (N, C, H, W)` (zero padding counts).

    Task 09.6: sum the strided planes of the kernel offsets; backward spreads
    `grad / (kh*kw)` back over every window position.
    """
    x = _as_tensor(x)
    kernel, stride, padding, (oh, ow) = _pool_setup("avg_pool2d", x, kernel_size, stride, padding)
    ### BEGIN SOLUTION
    (kh, kw), (sh, sw) = kernel, stride
    xp = pad2d(x.data, padding)
    out = np.zeros((x.shape[0], x.shape[1], oh, ow), dtype=x.data.dtype)
    for u in range(kh):
        for v in range(kw):
            out += xp[:, :, u:u + sh * oh:sh, v:v + sw * ow:sw]
    out /= kh * kw

    def backward(grad: np.ndarray) -> tuple:
        gp = np.zeros(xp.shape, dtype=grad.dtype)
        share = grad / (kh * kw)
        for u in range(kh):
            for v in range(kw):
                gp[:, :, u:u + sh * oh:sh, v:v + sw * ow:sw] += share
        return (gp[:, :, padding[0]:padding[0] + x.shape[2], padding[1]:padding[1] + x.shape[3]],)

    return Tensor.from_op(out, (x,), backward, op="avg_pool2d")
    ### END SOLUTION


# %%
#| export
class MaxPool2d(Module):
    """Max pooling over `kernel_size` windows; `stride` defaults to `kernel_size`."""

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)

    def forward(self, x: Tensor) -> Tensor:
        """Pool `x (N, C, H, W)` to `(N, C, OH, OW)`."""
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(MaxPool2d):
    """Average pooling over `kernel_size` windows; `stride` defaults to `kernel_size`."""

    def forward(self, x: Tensor) -> Tensor:
        """Pool `x (N, C, H, W)` to `(N, C, OH, OW)`."""
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding)


# %% nbgrader={"grade": true, "grade_id": "test-pool2d", "locked": true, "points": 3}
def test_unit_pool2d():
    """Task 09.5, Task 09.6"""
    from tinytorch.core.autograd import gradcheck

    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(max_pool2d(Tensor(x), 2).data, [[[[5, 7], [13, 15]]]])
    np.testing.assert_array_equal(avg_pool2d(Tensor(x), 2).data, [[[[2.5, 4.5], [10.5, 12.5]]]])
    rng = np.random.default_rng(0)
    xs = rng.permutation(2 * 2 * 5 * 5).reshape(2, 2, 5, 5) / 10.0  # distinct values: no ties
    for args in ((2, None, 0), (3, 1, 1), (3, 2, 1)):
        assert gradcheck(lambda t: max_pool2d(t, *args), [xs])
        assert gradcheck(lambda t: avg_pool2d(t, *args), [xs])
    assert MaxPool2d(2)(Tensor(np.ones((1, 3, 7, 7)))).shape == (1, 3, 3, 3)


# %% [markdown]
# ## Flatten
#
# Between the convolutional part and the classifier, `(N, C, H, W)` becomes `(N, C*H*W)`
# in C order: channel 0's `H*W` values first. Module 16 relies on that order to map a
# removed filter to the block of Linear inputs it fed. `Tensor.reshape` already has a
# backward pass, so Flatten is one line.

# %% nbgrader={"grade": false, "grade_id": "flatten", "solution": true}
#| export
class Flatten(Module):
    """Keep axis 0 (the batch) and flatten the rest: `(N, C, H, W) -> (N, C*H*W)`."""

    def forward(self, x: Tensor) -> Tensor:
        """Task 09.7: reshape to `(N, C*H*W)` (the product of the other axes)."""
        x = _as_tensor(x)
        if x.ndim < 2:
            raise ValueError(f"Flatten expects an input with a batch axis and at least one more, got shape {x.shape}")
        ### BEGIN SOLUTION
        # NOTE: not reshape(N, -1): for an empty batch (N = 0) the -1 is ambiguous and NumPy refuses.
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-flatten", "locked": true, "points": 1}
def test_unit_flatten():
    """Task 09.7"""
    x = Tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), requires_grad=True)
    y = Flatten()(x)
    assert y.shape == (2, 12)
    np.testing.assert_array_equal(y.data[1], np.arange(12, 24))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones((2, 3, 2, 2)))
    assert Flatten()(Tensor(np.zeros((0, 3, 2, 2)))).shape == (0, 12), "an empty batch flattens too"


# %% [markdown]
# ## Batch normalisation
#
# BatchNorm standardises each channel over the batch and the image, `(N, H, W)`, then
# lets the network rescale it: `y = gamma * (x - mean) / sqrt(var + eps) + beta`. Deep
# CNNs train faster and tolerate larger learning rates with it.
#
# *Training* uses the batch's own mean and (biased) variance and updates running
# estimates with PyTorch's convention (`momentum` is the weight of the **new** value):
#
# $$\hat\mu \leftarrow (1 - m)\,\hat\mu + m\,\mu_B, \qquad
#   \hat\sigma^2 \leftarrow (1 - m)\,\hat\sigma^2 + m\,\frac{M}{M-1}\,\sigma^2_B$$
#
# with `M = N*H*W` values per channel (the running variance is the *unbiased* one).
# *Evaluation* uses the running estimates, so a single image gives a deterministic answer.
#
# Backward in training mode must account for the mean and variance depending on every
# input. With `xhat` the normalised input and `d = grad * gamma`, per channel:
#
# $$\frac{\partial L}{\partial x} = \frac{1}{\sqrt{\sigma^2_B + \epsilon}}
#   \left(d - \overline{d} - \hat{x}\,\overline{d\,\hat{x}}\right)$$
#
# where the bars are means over `(N, H, W)`. In evaluation mode the statistics are
# constants and the gradient is simply `d / sqrt(running_var + eps)`.

# %% nbgrader={"grade": false, "grade_id": "batch-norm2d", "solution": true}
#| export
def batch_norm2d(x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor | None,
                 running_var: Tensor | None, training: bool, momentum: float = 0.1,
                 eps: float = 1e-5) -> Tensor:
    """Per-channel normalisation of `x (N, C, H, W)`, scaled by `weight` and shifted by `bias`.

    Task 09.8: batch statistics (and a running-statistics update) in training, the
    running statistics in evaluation; backward for both.

    Args:
        x: input `(N, C, H, W)`.
        weight, bias: `(C,)` scale (gamma) and shift (beta).
        running_mean, running_var: `(C,)` buffers updated in place in training (may be
            `None` there); required in evaluation.
        training: use (and record) batch statistics.
        momentum: weight of the new batch statistics in the running averages.
        eps: added to the variance before the square root.

    Raises:
        ValueError: wrong shape, or fewer than 2 values per channel in training.
    """
    x = _as_tensor(x)
    _check_image(f"batch_norm2d with {weight.shape[0]} features", x.shape, weight.shape[0])
    axes = (0, 2, 3)
    count = x.shape[0] * x.shape[2] * x.shape[3]
    if training and count < 2:
        raise ValueError(f"batch_norm2d needs more than 1 value per channel in training, got input shape {x.shape}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm2d in evaluation mode needs running_mean and running_var")
    ### BEGIN SOLUTION
    if training:
        mean, var = x.data.mean(axis=axes), x.data.var(axis=axes)
        if running_mean is not None:
            running_mean.data[...] = (1 - momentum) * running_mean.data + momentum * mean
        if running_var is not None:
            running_var.data[...] = (1 - momentum) * running_var.data + momentum * var * (count / (count - 1))
    else:
        mean, var = running_mean.data, running_var.data
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.data.dtype).reshape(1, -1, 1, 1)
    xhat = (x.data - mean.reshape(1, -1, 1, 1)) * inv_std
    gamma = weight.data.reshape(1, -1, 1, 1)
    out = xhat * gamma + bias.data.reshape(1, -1, 1, 1)

    def backward(grad: np.ndarray) -> tuple:
        d = grad * gamma
        if training:
            gx = inv_std * (d - d.mean(axis=axes, keepdims=True)
                            - xhat * (d * xhat).mean(axis=axes, keepdims=True))
        else:
            gx = d * inv_std
        return gx, (grad * xhat).sum(axis=axes), grad.sum(axis=axes)

    return Tensor.from_op(out, (x, weight, bias), backward, op="batch_norm2d")
    ### END SOLUTION


# %%
#| export
class BatchNorm2d(Module):
    """Batch normalisation per channel: parameters `weight`, `bias`; buffers `running_mean`, `running_var`."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features = _int(num_features, "num_features", 1)
        self.eps = check_number("eps", eps, low=0.0, low_open=True)
        self.momentum = check_number("momentum", momentum, 0.0, 1.0,
                                     note=" (PyTorch's cumulative momentum=None is not supported)")
        self.weight = Tensor(np.ones(self.num_features, np.float32), requires_grad=True)
        self.bias = Tensor(np.zeros(self.num_features, np.float32), requires_grad=True)
        self.running_mean = Tensor(np.zeros(self.num_features, np.float32))
        self.running_var = Tensor(np.ones(self.num_features, np.float32))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise `x (N, C, H, W)` with batch statistics (training) or running ones (eval)."""
        return batch_norm2d(x, self.weight, self.bias, self.running_mean, self.running_var,
                            self.training, self.momentum, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


# %% nbgrader={"grade": true, "grade_id": "test-batch-norm2d", "locked": true, "points": 3}
def test_unit_batch_norm2d():
    """Task 09.8"""
    from tinytorch.core.autograd import gradcheck

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 2, 2)) * 3 + 1
    g, b = rng.standard_normal(3), rng.standard_normal(3)
    bn = BatchNorm2d(3)
    y = bn(Tensor(x)).data
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.data, 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.data, 0.9 + 0.1 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-5)
    bn.eval()
    expected = (x - bn.running_mean.data.reshape(1, -1, 1, 1)) / np.sqrt(bn.running_var.data.reshape(1, -1, 1, 1) + 1e-5)
    np.testing.assert_allclose(bn(Tensor(x)).data, expected, rtol=1e-4, atol=1e-5)
    for training in (True, False):
        rm, rv = Tensor(rng.standard_normal(3)), Tensor(rng.uniform(0.5, 2, 3))
        assert gradcheck(lambda x_, g_, b_: batch_norm2d(x_, g_, b_, rm, rv, training, momentum=0.0), [x, g, b])


# %% [markdown]
# ## A small CNN end to end
#
# Put together, a network for 8x8 digit images (Module 08 loads them) reads like the
# PyTorch one it mirrors. Each stage halves the image and doubles the channels.

# %%
def demo_cnn():
    from tinytorch.core.layers import Linear, Sequential
    from tinytorch.core.activations import ReLU

    model = Sequential(
        Conv2d(1, 8, 3, padding=1), ReLU(), MaxPool2d(2),
        Conv2d(8, 16, 3, padding=1), ReLU(), MaxPool2d(2),
        Flatten(), Linear(16 * 2 * 2, 10),
    )
    x = Tensor(np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32))
    logits = model(x)
    print("logits", logits.shape, "from input", x.shape)
    return logits


# %%
def test_module():
    """Run every inline test of this module."""
    test_unit_im2col()
    test_unit_col2im()
    test_unit_conv2d()
    test_unit_conv2d_layer()
    test_unit_pool2d()
    test_unit_flatten()
    test_unit_batch_norm2d()
    assert demo_cnn().shape == (5, 10)


# %%
if __name__ == "__main__":
    test_module()
    print("Module 09: all inline tests passed")
