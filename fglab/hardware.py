"""What this machine's CPU runs fast, for choices that depend on it."""

from __future__ import annotations

import functools

import torch


@functools.cache  # asked every training step; the answer never changes
def fast_bfloat16() -> bool:
    """True where oneDNN runs bfloat16 matrix products and convolutions natively (AVX-512
    BF16 or AMX); elsewhere bfloat16 is emulated and slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
