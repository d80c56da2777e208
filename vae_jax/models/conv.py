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
flipped), so both forms share one module and checkpoints of either load in the other. In the
matmul form it is computed per output phase over the undilated input (``_by_output_phase``), so no
tap is multiplied by the dilation's zeros: 3 of every 4 for a 3×3 stride-2 layer.
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
    one = (1,) * 4
    return (ndim == 4 and dimension_numbers is not None and lax.conv_dimension_numbers(one, one, dimension_numbers)
            == lax.conv_dimension_numbers(one, one, _NHWC))


def _shifted_matmul(x, w, origin, out_hw, strides=(1, 1), dilation=(1, 1), precision=None):
    """Σ over taps (i, j) of x[:, origin + (i, j)·dilation + (p, q)·strides] @ w[i, j] for output
    pixels (p, q) < out_hw: the kh·kw strided slices side by side in (kh, kw, cin) order (the
    kernel's own row-major order), then one matmul."""
    kh, kw, cin, cout = w.shape
    (oh, ow), b = out_hw, x.shape[0]
    cols = [lax.slice(x, (0, origin[0] + i * dilation[0], origin[1] + j * dilation[1], 0),
                      (b, origin[0] + i * dilation[0] + (oh - 1) * strides[0] + 1,
                       origin[1] + j * dilation[1] + (ow - 1) * strides[1] + 1, cin), (1, strides[0], strides[1], 1))
            for i in range(kh) for j in range(kw)]
    patches = jnp.concatenate(cols, axis=-1) if len(cols) > 1 else cols[0]
    return jnp.dot(patches, w.reshape(kh * kw * cin, cout), precision=precision)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
    """``lax.conv_general_dilated`` for NHWC inputs and HWIO kernels (what flax passes); with
    ``impl() == 'matmul'`` computed as slices + matmul. Grouped convolutions and other layouts
    always use XLA's convolution (the nets here have none)."""
    if impl() == "xla" or feature_group_count != 1 or kwargs or not _is_nhwc(dimension_numbers, lhs.ndim):
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                        dimension_numbers, feature_group_count, precision=precision, **kwargs)
    kh, kw = rhs.shape[:2]
    ld, rd, s = tuple(lhs_dilation or (1, 1)), tuple(rhs_dilation or (1, 1)), tuple(window_strides)
    if isinstance(padding, str):   # the pads lax derives: from the dilated input and kernel sizes
        in_size = [(n - 1) * d + 1 for n, d in zip(lhs.shape[1:3], ld)]
        k_size = [(k - 1) * d + 1 for k, d in zip((kh, kw), rd)]
        padding = lax.padtype_to_pads(in_size, k_size, s, padding)
    padding = tuple(tuple(p) for p in padding)
    if ld != (1, 1) and s == (1, 1) and rd == (1, 1):
        out = _by_output_phase(lhs, rhs, ld, padding, precision)
        if out is not None:
            return out
    (ph0, ph1), (pw0, pw1) = padding
    # Input dilation is interior padding; negative pads crop, as in lax.
    x = lax.pad(lhs, jnp.zeros((), lhs.dtype), [(0, 0, 0), (ph0, ph1, ld[0] - 1), (pw0, pw1, ld[1] - 1), (0, 0, 0)])
    out_hw = [(n - (k - 1) * d - 1) // st + 1 for n, k, d, st in zip(x.shape[1:3], (kh, kw), rd, s)]
    return _shifted_matmul(x, rhs, (0, 0), out_hw, s, rd, precision)


def _phases(k: int, d: int, p0: int) -> list[tuple[int, int]]:
    """Per output phase r (output index o ≡ r mod d) of a stride-1 convolution over an input
    dilated by d and padded by p0 in front: the first kernel tap that lands on a real input value,
    and the input offset of that tap at o = r (taps t0, t0 + d, ... read inputs off, off + 1, ...)."""
    out = []
    for r in range(d):
        t0 = (p0 - r) % d
        out.append((t0, (r + t0 - p0) // d))
    return out


def _by_output_phase(lhs, rhs, ld, padding, precision):
    """A convolution of the ``ld``-dilated input (a transposed convolution) as one smaller
    convolution per output phase over the undilated input, interleaved: the taps that would meet
    the dilation's zeros are never multiplied (3 of 4 tap-and-phase pairs for 3×3, stride 2).
    None when the output does not split into equal phases (the caller then takes the general path)."""
    kh, kw, _, cout = rhs.shape
    b, n = lhs.shape[0], lhs.shape[1:3]
    out = [(m - 1) * d + 1 + p0 + p1 - k + 1 for m, d, (p0, p1), k in zip(n, ld, padding, (kh, kw))]
    if any(o <= 0 or o % d for o, d in zip(out, ld)):
        return None
    q = [o // d for o, d in zip(out, ld)]
    ph_h, ph_w = _phases(kh, ld[0], padding[0][0]), _phases(kw, ld[1], padding[1][0])

    def pads(ph, k, d, qn, m):
        taps = [len(range(t0, k, d)) for t0, _ in ph]
        lo = max(0, -min(off for _, off in ph))
        hi = max(0, max(qn - 1 + off + t - 1 for (_, off), t in zip(ph, taps) if t) - (m - 1))
        return lo, hi
    (lo_h, hi_h), (lo_w, hi_w) = pads(ph_h, kh, ld[0], q[0], n[0]), pads(ph_w, kw, ld[1], q[1], n[1])
    x = jnp.pad(lhs, ((0, 0), (lo_h, hi_h), (lo_w, hi_w), (0, 0)))
    rows = []
    for t0h, off_h in ph_h:
        row = []
        for t0w, off_w in ph_w:
            w = rhs[t0h::ld[0], t0w::ld[1]]          # the taps of this phase, [mh, mw, cin, cout]
            if w.shape[0] == 0 or w.shape[1] == 0:
                row.append(jnp.zeros((b, q[0], q[1], cout), lhs.dtype))
                continue
            row.append(_shifted_matmul(x, w, (lo_h + off_h, lo_w + off_w), q, precision=precision))
        rows.append(jnp.stack(row, axis=3))          # [B, qh, qw, phases_w, C]
    y = jnp.stack(rows, axis=2)                      # [B, qh, phases_h, qw, phases_w, C]
    return y.reshape(b, q[0] * ld[0], q[1] * ld[1], cout)


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
