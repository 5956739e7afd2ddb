"""Sliding windows of NHWC images as rows (im2col) and back (col2im).

A convolution becomes one matrix product over these windows: the float layers train
through it and the integer reference layers compute through it. The window axes are
ordered (kh, kw, c), the order of an HWIO weight reshaped to (kh * kw * cin, cout).
"""

import numpy as np


def output_size(size, kernel, stride, padding):
    """Output extent of a window of `kernel` sliding over `size` (plus `padding` zeros on
    each side) by `stride`: (size + 2 padding - kernel) // stride + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def pad_spatial(x, padding):
    """`x` (n, h, w, c) with `padding` zeros added on each side of h and w."""
    if padding == 0:
        return x
    return np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))


def windows(x, kh, kw, stride, padding):
    """The (n, oh, ow, kh, kw, c) windows of `x` (n, h, w, c): a read-only view when
    `padding` is 0 (no copy), so callers reshape or reduce it but never write to it."""
    padded = pad_spatial(x, padding)
    view = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(1, 2))
    return view[:, ::stride, ::stride].transpose(0, 1, 2, 4, 5, 3)


def im2col(x, kh, kw, stride, padding):
    """The windows of `x` (n, h, w, c) as rows: (n, oh, ow, kh * kw * c), contiguous."""
    view = windows(x, kh, kw, stride, padding)
    n, oh, ow = view.shape[:3]
    return np.ascontiguousarray(view).reshape(n, oh, ow, kh * kw * x.shape[3])


def col2im(columns, input_shape, kh, kw, stride, padding):
    """The adjoint of `im2col`: adds each window row of `columns` (n, oh, ow, kh*kw*c)
    back onto the pixels it was read from; returns an array of `input_shape`."""
    n, h, w, c = input_shape
    oh, ow = columns.shape[1:3]
    patches = columns.reshape(n, oh, ow, kh, kw, c)
    padded = np.zeros((n, h + 2 * padding, w + 2 * padding, c), columns.dtype)
    for i in range(kh):
        for j in range(kw):
            padded[:, i:i + stride * oh:stride, j:j + stride * ow:stride] += patches[:, :, :, i, j]
    return padded[:, padding:padding + h, padding:padding + w]
