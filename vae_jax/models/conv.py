"""2-D convolutions of the conv nets (nets.py, families/hvae.py): flax's ``nn.Conv`` with XLA's
convolution, or on the CPU the same convolution written as shifted slices and one matmul.

Why the second form exists: XLA:CPU (jaxlib 0.10.2) runs the *weight gradient* of a convolution
inside a loop, and a training epoch here is one ``lax.scan``, 5–29x slower than the same gradient
in a stand-alone jitted step (measured for 3×3 and 4×4 stride-2 convs at batch 32–64); none of
XLA:CPU's flags (oneDNN, XNNPACK, fusion modes) changes that. Written as slices + matmul, the weight
gradient is a matmul and the input gradient pads and adds, which XLA:CPU runs at full speed inside
the loop. Same function, float32 rounding apart (tests/test_conv.py checks values and gradients
against ``lax.conv_general_dilated``); measured end to end through the CLI in BENCHMARKS.md
("Convolutions on the CPU").

``VAE_JAX_CONV`` chooses: ``auto`` (default: the matmul form on the CPU backend, XLA's convolution
on GPU/TPU, where cuDNN / the TPU compiler own convolutions), ``xla`` or ``matmul``. A run records
the choice in run_meta.json (``conv_impl``).

A transposed convolution (the decoders' upsampling) is ``nn.Conv`` with ``input_dilation``: the
same function and the same parameters as ``nn.ConvTranspose`` (kernel [kh, kw, in, out], not
flipped), so both forms share one module and checkpoints of either load in the other.
"""
from __future__ import annotations

import os
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

ENV = "VAE_JAX_CONV"
IMPLS = ("auto", "xla", "matmul")
_NHWC = ("NHWC", "HWIO", "NHWC")


def check_env() -> str | None:
    """The error line for a bad ``VAE_JAX_CONV``, or None."""
    value = os.environ.get(ENV, "auto")
    if value not in IMPLS:
        return f"{ENV}: {value!r} is not one of {list(IMPLS)} (unset it for 'auto')"
    return None


def impl() -> str:
    """'xla' or 'matmul': what ``conv_general_dilated`` computes with on the default backend."""
    error = check_env()
    if error:
        raise ValueError(error)
    value = os.environ.get(ENV, "auto")
    if value == "auto":
        return "matmul" if jax.default_backend() == "cpu" else "xla"
    return value


def _is_nhwc(dimension_numbers, ndim: int) -> bool:
    if ndim != 4:
        return False
    return lax.conv_dimension_numbers((1,) * 4, (1,) * 4, _NHWC) == lax.conv_dimension_numbers(
        (1,) * 4, (1,) * 4, dimension_numbers) if dimension_numbers is not None else False


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
    """``lax.conv_general_dilated`` for NHWC inputs and HWIO kernels (what flax passes); with
    ``impl() == 'matmul'`` computed as slices + matmul. Grouped convolutions and other layouts
    always use XLA's convolution (the nets here have none)."""
    if impl() == "xla" or feature_group_count != 1 or kwargs or not _is_nhwc(dimension_numbers, lhs.ndim):
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                        dimension_numbers, feature_group_count, precision=precision, **kwargs)
    kh, kw, cin, cout = rhs.shape
    ld, rd, s = tuple(lhs_dilation or (1, 1)), tuple(rhs_dilation or (1, 1)), tuple(window_strides)
    if isinstance(padding, str):   # the pads lax derives: from the dilated input and kernel sizes
        in_size = [(n - 1) * d + 1 for n, d in zip(lhs.shape[1:3], ld)]
        k_size = [(k - 1) * d + 1 for k, d in zip((kh, kw), rd)]
        padding = lax.padtype_to_pads(in_size, k_size, s, padding)
    (ph0, ph1), (pw0, pw1) = padding
    # Input dilation is interior padding; negative pads crop, as in lax.
    x = lax.pad(lhs, jnp.zeros((), lhs.dtype), [(0, 0, 0), (ph0, ph1, ld[0] - 1), (pw0, pw1, ld[1] - 1), (0, 0, 0)])
    b, height, width, _ = x.shape
    oh = (height - (kh - 1) * rd[0] - 1) // s[0] + 1
    ow = (width - (kw - 1) * rd[1] - 1) // s[1] + 1
    # Patch features in (kh, kw, cin) order: the kernel's own row-major order.
    cols = [lax.slice(x, (0, i * rd[0], j * rd[1], 0),
                      (b, i * rd[0] + (oh - 1) * s[0] + 1, j * rd[1] + (ow - 1) * s[1] + 1, cin), (1, s[0], s[1], 1))
            for i in range(kh) for j in range(kw)]
    patches = jnp.concatenate(cols, axis=-1) if len(cols) > 1 else cols[0]
    return jnp.dot(patches, rhs.reshape(kh * kw * cin, cout), precision=precision)


def Conv(features: int, kernel_size: Sequence[int], strides: Sequence[int] = (1, 1), padding="SAME",
         **kwargs) -> nn.Conv:
    return nn.Conv(features, tuple(kernel_size), strides=tuple(strides), padding=padding,
                   conv_general_dilated=conv_general_dilated, **kwargs)


def transpose_padding(k: int, s: int, padding: str) -> tuple[int, int]:
    """Pads of the dilated-input convolution equal to ``lax.conv_transpose(..., padding)``."""
    if padding == "SAME":
        total = k + s - 2
        before = k - 1 if s > k - 1 else -(-total // 2)
    elif padding == "VALID":
        total = k + s - 2 + max(k - s, 0)
        before = k - 1
    else:
        raise ValueError(f"padding: {padding!r} is not 'SAME' or 'VALID'")
    return before, total - before


def ConvTranspose(features: int, kernel_size: Sequence[int], strides: Sequence[int], padding: str = "SAME",
                  **kwargs) -> nn.Conv:
    """``nn.ConvTranspose(features, kernel_size, strides, padding)`` as a convolution of the
    stride-dilated input (same parameters, same function)."""
    pads = tuple(transpose_padding(k, s, padding) for k, s in zip(kernel_size, strides))
    return nn.Conv(features, tuple(kernel_size), strides=(1, 1), padding=pads, input_dilation=tuple(strides),
                   conv_general_dilated=conv_general_dilated, **kwargs)
