//! How the operands of an f32 product are laid out in memory (the bf16 layout is `bf16`'s),
//! and the buffers every product reuses between calls.
//!
//! A weight `W` of shape `(k, n)` (`y = x · W`) is stored as `⌈n / NR⌉` panels, each `k × NR`
//! contiguous (row `kk` of a panel = `W[kk][p·NR .. p·NR + NR]`, zero-padded), so the
//! micro-kernel streams one panel from start to end. The left operand is re-packed per call
//! into blocks of `MR` rows interleaved along `k` (`a[kk·MR + r]`), which is `m·k` copies
//! against `m·k·n` multiply-adds.

/// Columns per weight panel: two AVX-512 registers of f32.
pub const NR: usize = 32;
/// Rows of the left operand per micro-kernel call (12 × 2 accumulators + 2 + 1 ≤ 32 zmm).
pub(super) const MR: usize = 12;

/// A `(k, n)` right-hand operand packed into `NR`-column panels.
#[derive(Debug, Default, Clone)]
pub struct Panels {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl Panels {
    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// Panel `p`: `k` rows of `NR` columns.
    #[inline]
    pub(super) fn panel(&self, p: usize) -> &[f32] {
        &self.data[p * self.k * NR..][..self.k * NR]
    }

    fn reset(&mut self, k: usize, n: usize) {
        self.k = k;
        self.n = n;
        let need = n.div_ceil(NR) * k * NR;
        // Old values are all overwritten except the padding columns of the last panel.
        self.data.resize(need, 0.0);
        self.data.truncate(need);
        let cols = n % NR;
        if cols != 0 {
            for row in self.data[need - k * NR..].chunks_exact_mut(NR) {
                row[cols..].fill(0.0);
            }
        }
    }

    /// Packs `W[kk][j] = src[kk·ld + j]` for `kk < k`, `j < n` (a row-major `(k, n)` matrix).
    pub fn pack_rows(&mut self, src: &[f32], ld: usize, k: usize, n: usize) {
        self.reset(k, n);
        if k == 0 {
            return;
        }
        for (p, panel) in self.data.chunks_exact_mut(k * NR).enumerate() {
            let c0 = p * NR;
            let cols = NR.min(n - c0);
            for (kk, dst) in panel.chunks_exact_mut(NR).enumerate() {
                dst[..cols].copy_from_slice(&src[kk * ld + c0..][..cols]);
            }
        }
    }

    /// Packs the transpose of a row-major `(n, k)` matrix: `W[kk][j] = src[j·ld + kk]`
    /// (a PyTorch `(out, in)` linear weight, or the keys of an attention head).
    pub fn pack_transposed(&mut self, src: &[f32], ld: usize, k: usize, n: usize) {
        self.reset(k, n);
        if k == 0 {
            return;
        }
        for (p, panel) in self.data.chunks_exact_mut(k * NR).enumerate() {
            let c0 = p * NR;
            for c in 0..NR.min(n - c0) {
                let row = &src[(c0 + c) * ld..][..k];
                for (kk, &v) in row.iter().enumerate() {
                    panel[kk * NR + c] = v;
                }
            }
        }
    }
}

/// Reusable buffers of a product: the packed left operand and the panel-major result.
#[derive(Debug, Default)]
pub struct GemmScratch {
    /// The left operand packed by [`pack_left`] (the f32 products).
    pub(super) a: Vec<f32>,
    /// The left operand as bf16 pairs (the bf16 products).
    pub(super) a16: Vec<u32>,
    pub(super) out: Vec<f32>,
}

/// Packs `x (m, k)` into blocks of `MR` rows (the last one zero-padded), each interleaved
/// along `k`: `a[b·MR·k + kk·MR + r]`. (Smaller blocks for the remainder were tried: LLVM
/// spilled their accumulators to the stack, which cost far more than the padding rows.)
pub(super) fn pack_left(x: &[f32], ldx: usize, m: usize, k: usize, a: &mut Vec<f32>) {
    let need = m.div_ceil(MR) * MR * k;
    if a.len() < need {
        a.resize(need, 0.0);
    }
    let (mut r0, mut off) = (0, 0);
    while r0 < m {
        let rows = (m - r0).min(MR);
        let block = &mut a[off..off + MR * k];
        for (kk, dst) in block.chunks_exact_mut(MR).enumerate() {
            for (r, d) in dst.iter_mut().enumerate() {
                *d = if r < rows {
                    x[(r0 + r) * ldx + kk]
                } else {
                    0.0
                };
            }
        }
        r0 += rows;
        off += MR * k;
    }
}
