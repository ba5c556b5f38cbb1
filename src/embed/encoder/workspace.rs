//! The buffers of a forward pass, kept between calls so that no request page-faults fresh
//! memory: one [`Workspace`] per concurrent pass, one [`HeadScratch`] per rayon thread.

use std::cell::Cell;

use crate::embed::kernel::{GemmScratch, Panels};

/// Buffers of one forward pass.
#[derive(Default)]
pub(super) struct Workspace {
    /// The hidden states `(tokens, hidden)`, updated layer by layer.
    pub x: Vec<f32>,
    /// What a layer computes on the way from its input to its output.
    pub layer: LayerScratch,
}

/// Intermediate results inside one transformer layer.
#[derive(Default)]
pub(super) struct LayerScratch {
    pub qkv: Vec<f32>,
    pub context: Vec<f32>,
    /// Attention output head by head, before it is interleaved into `context`.
    pub heads: Vec<f32>,
    pub projected: Vec<f32>,
    pub inner: Vec<f32>,
    pub gemm: GemmScratch,
}

/// Per-thread buffers of one attention head.
#[derive(Default)]
pub(super) struct HeadScratch {
    pub keys: Panels,
    pub values: Panels,
    pub scores: Vec<f32>,
    pub gemm: GemmScratch,
}

thread_local! {
    pub(super) static HEAD_SCRATCH: Cell<HeadScratch> = Cell::new(HeadScratch::default());
}

/// The first `len` values of `buffer`, grown (never shrunk) to hold them.
pub(super) fn grow(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}
