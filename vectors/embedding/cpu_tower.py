"""An OpenCLIP vision transformer rearranged for a CPU: the same arithmetic in fewer, faster calls.

Measured on ViT-B-32, batches of 32, on a 2-core Xeon with AMX (`bench/ingest.py`, which prints the
share of each run's time spent in matrix products):

- The patch embedding is a convolution whose kernel equals its stride: each pixel is seen once, so
  it is one matrix product of the image's patches with the flattened kernel. oneDNN's bf16
  convolution takes three times as long (13 ms of a batch's 240 ms; 4 ms as a matmul), and its fp32
  one 25% longer.
- In bf16, oneDNN reorders a plain weight into its blocked AMX layout on every call; a block's
  weights (14 MB) do not stay in the cores' caches (2 MB each) between layers, so that reorder is
  paid from memory each time. Weights reordered once at load time (what `torch.compile`'s weight
  freezing does, without the compile) avoid it. The attention's input projection is one such
  product, so self-attention is done here with the packed weights and PyTorch's fused
  `scaled_dot_product_attention`, whose CPU kernel reads the heads in place.

Together: 1.10-1.19x OpenCLIP's own tower in bf16 (four interleaved measurements; the gain varies
with the memory traffic of this shared machine). Packed weights are oneDNN's opaque tensors: the
rearranged tower cannot be deep-copied or saved as a state dict, and is not meant to be.

Each step applies only to the layers it is written for and leaves anything else as it was. Vectors
agree with the plain model to rounding (tested against it in fp32 and bf16).
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

logger = logging.getLogger(__name__)


def rearrange_for_cpu(visual: nn.Module, *, batch_size: int, pack_weights: bool) -> None:
    """Rearranges `visual` (an OpenCLIP image tower already in its final dtype) in place. With
    `pack_weights` (bf16 weights on a CPU that multiplies bf16 natively: the caller knows), each
    block gets packed weights, kept only if that block then gives the plain block's numbers."""
    conv = getattr(visual, "conv1", None)
    if isinstance(conv, nn.Conv2d) and PatchEmbeddingMatmul.fits(conv):
        visual.conv1 = PatchEmbeddingMatmul(conv)
    if not (pack_weights and _packing_available()):
        return
    grid = getattr(visual, "grid_size", None)
    rows = batch_size * (math.prod(grid) + 1) if grid else None
    for block in getattr(getattr(visual, "transformer", None), "resblocks", ()):
        if isinstance(block, ResidualAttentionBlock) and not _pack_block(block, rows=rows):
            return


def _pack_block(block: ResidualAttentionBlock, *, rows: int | None) -> bool:
    """Packs one block's products, checked on a probe: a oneDNN that cannot run these private ops,
    or runs them differently, leaves the block (and the ones after it) as they were."""
    plain = {"attn": block.attn, "c_fc": block.mlp.c_fc, "c_proj": block.mlp.c_proj}
    width = plain["c_fc"].in_features if isinstance(plain["c_fc"], nn.Linear) else None
    if width is None or not isinstance(plain["c_proj"], nn.Linear):
        return True
    probe = torch.randn(2, 8, width, generator=torch.Generator().manual_seed(0)).to(plain["c_fc"].weight.dtype)
    try:
        with torch.inference_mode():
            expected = block(probe).float().flatten()
            if PackedSelfAttention.fits(block.attn) and not hasattr(block, "ln_1_kv"):
                block.attn = PackedSelfAttention(block.attn, rows=rows)
            block.mlp.c_fc = PackedLinear(plain["c_fc"].weight, plain["c_fc"].bias, rows=rows)
            block.mlp.c_proj = PackedLinear(plain["c_proj"].weight, plain["c_proj"].bias, rows=rows)
            agreement = float(F.cosine_similarity(block(probe).float().flatten(), expected, dim=0))
        if agreement >= 0.999:
            return True
        logger.warning(
            "The packed image tower disagrees with the plain one (cosine %.4f); running it unpacked.", agreement
        )
    except RuntimeError:
        logger.warning("oneDNN could not run the packed image tower; running it unpacked.", exc_info=True)
    block.attn, block.mlp.c_fc, block.mlp.c_proj = plain["attn"], plain["c_fc"], plain["c_proj"]
    return False


def _packing_available() -> bool:
    return torch.backends.mkldnn.is_available() and all(  # type: ignore[no-untyped-call]
        hasattr(torch.ops.mkldnn, op) for op in ("_reorder_linear_weight", "_linear_pointwise")
    )


class PatchEmbeddingMatmul(nn.Module):
    """A ViT's `conv1` as patches @ kernel: same input, same [batch, width, grid, grid] output."""

    @staticmethod
    def fits(conv: nn.Conv2d) -> bool:
        return (
            conv.kernel_size == conv.stride
            and conv.padding == (0, 0)
            and conv.dilation == (1, 1)
            and conv.groups == 1
            and conv.padding_mode == "zeros"
        )

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.patch = tuple(conv.kernel_size)
        self.out_channels = conv.out_channels
        self.weight = nn.Parameter(conv.weight.detach().flatten(1).t().contiguous(), requires_grad=False)
        self.bias = conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        ph, pw = self.patch
        gh, gw = height // ph, width // pw
        x = x[:, :, : gh * ph, : gw * pw]  # the convolution drops a partial last patch too
        patches = x.reshape(batch, channels, gh, ph, gw, pw).permute(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(batch * gh * gw, channels * ph * pw)
        out = patches @ self.weight if self.bias is None else torch.addmm(self.bias, patches, self.weight)
        return out.view(batch, gh * gw, self.out_channels).transpose(1, 2).view(batch, self.out_channels, gh, gw)


class PackedLinear(nn.Module):
    """x @ weight.T + bias with the weight reordered once into oneDNN's layout."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, *, rows: int | None) -> None:
        super().__init__()
        self.register_buffer("packed", torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows))
        self.register_buffer("bias", None if bias is None else bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")  # type: ignore[no-any-return]


class PackedSelfAttention(nn.Module):
    """`nn.MultiheadAttention` as the vision tower calls it (batch first, self-attention, no mask),
    with packed projections and the fused attention kernel."""

    @staticmethod
    def fits(attn: nn.Module) -> bool:
        return (
            isinstance(attn, nn.MultiheadAttention)
            and attn.batch_first
            and attn._qkv_same_embed_dim
            and attn.in_proj_bias is not None
            and attn.bias_k is None
            and attn.bias_v is None
            and not attn.add_zero_attn
        )

    def __init__(self, attn: nn.MultiheadAttention, *, rows: int | None) -> None:
        super().__init__()
        self.heads = attn.num_heads
        self.in_proj = PackedLinear(attn.in_proj_weight, attn.in_proj_bias, rows=rows)
        self.out_proj = PackedLinear(attn.out_proj.weight, attn.out_proj.bias, rows=rows)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, None]:
        if key is not query or value is not query or attn_mask is not None or need_weights:
            raise ValueError("PackedSelfAttention computes unmasked self-attention only.")
        batch, tokens, width = query.shape
        qkv = self.in_proj(query).view(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.out_proj(out.transpose(1, 2).reshape(batch, tokens, width)), None
