//! How one matrix product is shared among rayon's threads, whichever kernel computes it.

#![expect(
    clippy::too_many_arguments,
    reason = "BLAS-style kernels take operands, strides and shapes"
)]

use rayon::prelude::*;

use super::layout::{MR, NR};

/// Products smaller than this many multiply-adds stay on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 17;
/// From this many rows a parallel product splits the rows, below it the panels.
const ROW_SPLIT_MIN_ROWS: usize = 4 * MR;

/// Shares the `(m, n)` product among rayon's threads. `product(r0, rows, p, y, ldy, cols)`
/// computes rows `r0 .. r0 + rows` (`r0` a multiple of the kernel's block of `mr` rows) of
/// panel `p` into `y`, whose first element is that block's top-left corner.
pub(super) fn split<F>(
    m: usize,
    n: usize,
    k: usize,
    mr: usize,
    y: &mut [f32],
    ldy: usize,
    out: &mut Vec<f32>,
    parallel: bool,
    product: &F,
) where
    F: Fn(usize, usize, usize, &mut [f32], usize, usize) + Sync,
{
    let panels = n.div_ceil(NR);
    let threads = rayon::current_num_threads();
    if !(parallel && threads > 1 && m * k * n >= PARALLEL_MIN_MACS) {
        for p in 0..panels {
            let c0 = p * NR;
            product(0, m, p, &mut y[c0..], ldy, NR.min(n - c0));
        }
    } else if m >= ROW_SPLIT_MIN_ROWS {
        // Many rows: each thread takes a band of whole row blocks and all the panels, and
        // writes its rows of `y` directly (the weights are shared in L3).
        let band = m.div_ceil(mr).div_ceil(threads) * mr;
        y.par_chunks_mut(band * ldy)
            .enumerate()
            .for_each(|(t, y_band)| {
                let r0 = t * band;
                let rows = band.min(m - r0);
                for p in 0..panels {
                    let c0 = p * NR;
                    product(r0, rows, p, &mut y_band[c0..], ldy, NR.min(n - c0));
                }
            });
    } else {
        // Few rows: the weights dominate, so split the panels; each thread writes whole
        // panels of a panel-major buffer, copied into `y` afterwards.
        let need = panels * m * NR;
        if out.len() < need {
            out.resize(need, 0.0);
        }
        let out = &mut out[..need];
        out.par_chunks_mut(m * NR)
            .enumerate()
            .with_min_len(panels.div_ceil(threads))
            .for_each(|(p, out_p)| product(0, m, p, out_p, NR, NR));
        for (p, out_p) in out.chunks_exact(m * NR).enumerate() {
            let c0 = p * NR;
            let cols = NR.min(n - c0);
            for (r, src) in out_p.chunks_exact(NR).enumerate() {
                y[r * ldy + c0..][..cols].copy_from_slice(&src[..cols]);
            }
        }
    }
}
