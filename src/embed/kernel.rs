//! CPU kernels for the encoder: linear layers against weights packed once at load (f32, or bf16
//! where the CPU multiplies it), bias and erf-GELU fused; a row softmax with a vectorisable
//! `exp`; a fused residual + layer norm.
//!
//! The f32 kernels are plain Rust written so that LLVM vectorises it (fixed-size arrays,
//! `as_chunks`, lane-wise accumulators). Each of their entry points is compiled several times:
//! once with AVX-512 enabled, once with AVX2 + FMA, and once for the baseline target;
//! [`Isa::detect`] picks at run time, so the binary still runs on any x86-64 (and elsewhere,
//! generically). No `target-cpu=native` is needed. The bf16 products ([`bf16`]) are written
//! with AVX-512 BF16 intrinsics and run only where the CPU has that extension.
//!
//! Unsafe code is confined to the four submodules that need it, each allowing it for itself:
//! `gemm` and `rows` call their `#[target_feature]` copies once [`Isa::detect`] has checked the
//! CPU, and `bf16` and `widen` use vector intrinsics once [`bf16::supported`] has.
//!
//! Submodules, lowest first (none imports one listed after it):
//! - `isa`: which compiled copy runs; `math`: `erf`, GELU, `exp`, lane-wise sum and max;
//! - `layout`: how f32 operands are packed into panels and blocks, and the scratch every
//!   product reuses;
//! - `parallel`: how one product is shared among rayon's threads;
//! - `gemm` (f32 products), `widen` (bf16 weights on f32 multiply-adds), `bf16` (bf16
//!   products, either `vdpbf16ps` or `widen`), `rows` (softmax, layer norm);
//! - `linear`: a linear layer in either precision, multiplied by `gemm` or `bf16`.

pub mod bf16;
mod gemm;
mod isa;
mod layout;
mod linear;
mod math;
mod parallel;
mod rows;
#[cfg(test)]
mod tests;
mod widen;

pub use bf16::Bf16Product;
pub use gemm::gemm;
pub use isa::Isa;
pub use layout::{GemmScratch, Panels, NR};
pub use linear::{PackedLinear, Precision};
pub use math::Act;
pub use rows::{layer_norm_rows, softmax_rows};
