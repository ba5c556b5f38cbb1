//! Multi-head self-attention on host buffers: one fused task per (text, head) — scores,
//! softmax, weighted sum — spread over rayon's threads, each with its own buffers. Texts are
//! not padded, so no key is masked.

use std::cell::Cell;

use rayon::prelude::*;

use super::workspace::{grow, HEAD_SCRATCH};
use crate::embed::kernel::{self, Act, Isa};

/// The texts of a batch laid end to end, without padding: text `b` is rows
/// `starts[b] .. starts[b + 1]` of every `(tokens, ·)` buffer.
pub(super) struct Batch<'a> {
    pub starts: &'a [usize],
}

impl Batch<'_> {
    pub fn tokens(&self) -> usize {
        self.starts.last().copied().unwrap_or(0)
    }

    pub fn texts(&self) -> usize {
        self.starts.len().saturating_sub(1)
    }

    /// First row and length of text `b`.
    pub fn span(&self, b: usize) -> (usize, usize) {
        (self.starts[b], self.starts[b + 1] - self.starts[b])
    }
}

/// The attention heads of a layer and the kernels that run them.
pub(super) struct Attention {
    pub isa: Isa,
    pub heads: usize,
    pub head_dim: usize,
}

impl Attention {
    /// `qkv (tokens, 3 · hidden)` → `context (tokens, hidden)`, each text attending only to
    /// its own tokens; `heads_buffer` holds every head's output before it is interleaved into
    /// `context` (text `b`'s heads at rows `starts[b] · heads ..`).
    pub fn forward(
        &self,
        qkv: &[f32],
        texts: &Batch,
        heads_buffer: &mut Vec<f32>,
        context: &mut [f32],
    ) {
        let (isa, d, heads) = (self.isa, self.head_dim, self.heads);
        let h = heads * d;
        let ld = 3 * h;
        let per_head = grow(heads_buffer, texts.tokens() * h);
        // One task per (text, head), each with its own slice of the output.
        let mut tasks = Vec::with_capacity(texts.texts() * heads);
        let mut rest = &mut per_head[..];
        for b in 0..texts.texts() {
            let (_, len) = texts.span(b);
            for head in 0..heads {
                let (out, tail) = std::mem::take(&mut rest).split_at_mut(len * d);
                tasks.push((b, head, out));
                rest = tail;
            }
        }
        tasks.into_par_iter().for_each(|(b, head, out)| {
            let (first, len) = texts.span(b);
            let rows = &qkv[first * ld..(first + len) * ld];
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
            kernel::softmax_rows(isa, scores, len, None);
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
        for b in 0..texts.texts() {
            let (first, len) = texts.span(b);
            if len == 0 {
                continue;
            }
            let text_heads = &per_head[first * h..(first + len) * h];
            for (head, src) in text_heads.chunks_exact(len * d).enumerate() {
                for (i, row) in src.chunks_exact(d).enumerate() {
                    context[(first + i) * h + head * d..][..d].copy_from_slice(row);
                }
            }
        }
    }
}
