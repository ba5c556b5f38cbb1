//! Multi-head self-attention on host buffers: one fused task per (text, head) — scores, key
//! mask, softmax, weighted sum — spread over rayon's threads, each with its own buffers.

use std::cell::Cell;

use rayon::prelude::*;

use super::workspace::{grow, HEAD_SCRATCH};
use crate::embed::kernel::{self, Act, Isa};

/// The texts of a flattened batch: `batch` texts of `len` tokens each (padded to the longest),
/// and the additive bias of every key (`batch · len` values, `None` when nothing is padded).
pub(super) struct Batch<'a> {
    pub batch: usize,
    pub len: usize,
    pub key_bias: Option<&'a [f32]>,
}

impl Batch<'_> {
    pub fn tokens(&self) -> usize {
        self.batch * self.len
    }
}

/// The attention heads of a layer and the kernels that run them.
pub(super) struct Attention {
    pub isa: Isa,
    pub heads: usize,
    pub head_dim: usize,
}

impl Attention {
    /// `qkv (batch · len, 3 · hidden)` → `context (batch · len, hidden)`; `heads_buffer` holds
    /// every head's output before it is interleaved into `context`.
    pub fn forward(
        &self,
        qkv: &[f32],
        texts: &Batch,
        heads_buffer: &mut Vec<f32>,
        context: &mut [f32],
    ) {
        let (isa, d, heads) = (self.isa, self.head_dim, self.heads);
        let (batch, len) = (texts.batch, texts.len);
        let h = heads * d;
        let ld = 3 * h;
        let per_head = grow(heads_buffer, batch * heads * len * d);
        per_head
            .par_chunks_mut(len * d)
            .enumerate()
            .for_each(|(task, out)| {
                let (b, head) = (task / heads, task % heads);
                let rows = &qkv[b * len * ld..(b + 1) * len * ld];
                let mut s = HEAD_SCRATCH.with(Cell::take);
                s.keys.pack_transposed(&rows[h + head * d..], ld, d, len);
                s.values.pack_rows(&rows[2 * h + head * d..], ld, len, d);
                let scores = grow(&mut s.scores, len * len);
                kernel::gemm(
                    isa,
                    &rows[head * d..],
                    ld,
                    len,
                    &s.keys,
                    None,
                    Act::None,
                    scores,
                    len,
                    &mut s.gemm,
                    false,
                );
                kernel::softmax_rows(
                    isa,
                    scores,
                    len,
                    texts.key_bias.map(|kb| &kb[b * len..(b + 1) * len]),
                );
                kernel::gemm(
                    isa,
                    scores,
                    len,
                    len,
                    &s.values,
                    None,
                    Act::None,
                    out,
                    d,
                    &mut s.gemm,
                    false,
                );
                HEAD_SCRATCH.with(|cell| cell.set(s));
            });
        for (task, src) in per_head.chunks_exact(len * d).enumerate() {
            let (b, head) = (task / heads, task % heads);
            for (i, row) in src.chunks_exact(d).enumerate() {
                context[(b * len + i) * h + head * d..][..d].copy_from_slice(row);
            }
        }
    }
}
