//! The bf16-weight product on f32 multiply-adds: each bf16 weight pair is widened to two f32
//! vectors in registers (a shift and a mask) and multiplied with `vfmadd` against the f32
//! activations, which are not rounded. Same weights and layout as the `vdpbf16ps` kernel
//! ([`Panels16`](super::bf16::Panels16)), different instructions. Where `vdpbf16ps` issues
//! at a quarter of the f32 FMA rate (the Intel Xeon, Emerald Rapids, measured here: 1.3 G
//! against 5.3 G instructions a second on one core), this is about twice as fast; where it
//! runs at full rate (AMD Zen 4 and 5) the dot-product kernel is. `bf16` times both at load.

#![expect(
    unsafe_code,
    reason = "AVX-512 intrinsics (vector loads and bit casts) after run-time detection"
)]

use super::layout::NR;
use super::math::{finish_row, Act};

/// Rows of the left operand per micro-kernel call: 12 × 2 accumulators and 4 widened weight
/// vectors fit the 32 vector registers (the activations are broadcast from memory).
pub(super) const MR_WIDE: usize = 12;

/// How many weight pairs (128 bytes each) ahead of the multiply-adds the kernel prefetches
/// (16 was faster than none in three rounds of three of the single-thread forward of short
/// prompts; 4 and 8 were within the machine's noise of it).
const PREFETCH_PAIRS: usize = 16;

/// `x (m, k)` copied into rows of `2 · pairs` floats (a zero column where `k` is odd), `m`
/// padded with zero rows to a multiple of [`MR_WIDE`].
pub(super) fn pack_left(x: &[f32], m: usize, k: usize, pairs: usize, a: &mut Vec<f32>) {
    let stride = 2 * pairs;
    a.clear();
    a.resize(m.div_ceil(MR_WIDE) * MR_WIDE * stride, 0.0);
    for (dst, src) in a.chunks_exact_mut(stride).zip(x.chunks_exact(k)) {
        dst[..k].copy_from_slice(src);
    }
}

/// One weight panel against blocks of [`MR_WIDE`] rows of the left operand.
pub(super) struct WideBlock<'a> {
    /// The left operand from the block's first row on (rows of `2 · pairs` floats).
    pub a: &'a [f32],
    pub pairs: usize,
    pub panel: &'a [u16],
    pub bias: &'a [f32],
    pub act: Act,
}

impl WideBlock<'_> {
    /// Rows `0 .. rows` of the block's product into `y` (stride `ldy`, `cols` columns).
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn product(&self, rows: usize, y: &mut [f32], ldy: usize, cols: usize) {
        use std::arch::x86_64::{
            __m512, _mm512_and_si512, _mm512_castsi512_ps, _mm512_fmadd_ps, _mm512_loadu_si512,
            _mm512_set1_epi32, _mm512_set1_ps, _mm512_setzero_ps, _mm512_slli_epi32,
            _mm512_storeu_ps, _mm_prefetch, _MM_HINT_T0,
        };
        let pairs = self.pairs;
        let stride = 2 * pairs;
        let bias: [f32; NR] = std::array::from_fn(|j| self.bias[j]);
        let panel = &self.panel.as_chunks::<{ 2 * NR }>().0[..pairs];
        let high = _mm512_set1_epi32(0xFFFF_0000_u32 as i32);
        let mut r0 = 0;
        while r0 < rows {
            let block = &self.a[r0 * stride..][..MR_WIDE * stride];
            let a_rows: [*const f32; MR_WIDE] =
                std::array::from_fn(|r| block[r * stride..].as_ptr());
            let mut acc: [[__m512; 2]; MR_WIDE] = [[_mm512_setzero_ps(); 2]; MR_WIDE];
            for (q, b) in panel.iter().enumerate() {
                // The weights stream from L3 once per block: ask for them a few pairs ahead.
                // A prefetch never faults, so the address may lie past the panel.
                let ahead = b
                    .as_ptr()
                    .wrapping_add(PREFETCH_PAIRS * 2 * NR)
                    .cast::<i8>();
                _mm_prefetch::<_MM_HINT_T0>(ahead);
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
                // SAFETY: `b` is 64 u16 = two 512-bit vectors; unaligned loads.
                let (b0, b1) = unsafe {
                    (
                        _mm512_loadu_si512(b.as_ptr().cast()),
                        _mm512_loadu_si512(b.as_ptr().add(NR).cast()),
                    )
                };
                // A bf16 is the high half of an f32: the even row sits in each lane's low
                // 16 bits (shift it up), the odd row in the high 16 bits (mask the low off).
                let even0 = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(b0));
                let odd0 = _mm512_castsi512_ps(_mm512_and_si512(b0, high));
                let even1 = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(b1));
                let odd1 = _mm512_castsi512_ps(_mm512_and_si512(b1, high));
                for r in 0..MR_WIDE {
                    // SAFETY: row `r` of `block` has `2 · pairs` values and `q < pairs`;
                    // unchecked so the loop keeps to registers.
                    let (xe, xo) = unsafe { (*a_rows[r].add(2 * q), *a_rows[r].add(2 * q + 1)) };
                    let (xe, xo) = (_mm512_set1_ps(xe), _mm512_set1_ps(xo));
                    acc[r][0] = _mm512_fmadd_ps(xe, even0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(xe, even1, acc[r][1]);
                    acc[r][0] = _mm512_fmadd_ps(xo, odd0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(xo, odd1, acc[r][1]);
                }
            }
            for (r, acc_r) in acc.iter().enumerate().take((rows - r0).min(MR_WIDE)) {
                let mut row = [0.0f32; NR];
                // `row` holds 32 f32 = two 512-bit vectors (unaligned stores, allowed by
                // this fn's safety contract).
                _mm512_storeu_ps(row.as_mut_ptr(), acc_r[0]);
                _mm512_storeu_ps(row.as_mut_ptr().add(NR / 2), acc_r[1]);
                finish_row(row, &bias, self.act, &mut y[(r0 + r) * ldy..][..cols]);
            }
            r0 += MR_WIDE;
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn product(&self, _rows: usize, _y: &mut [f32], _ldy: usize, _cols: usize) {
        unreachable!("Panels16 is never built without AVX-512")
    }
}
