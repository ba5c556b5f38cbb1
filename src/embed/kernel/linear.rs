//! A linear layer `y = act(x · W + b)` with its weights packed once at load, in f32 or in bf16:
//! the one place that chooses between the f32 product (`gemm`) and the bf16 one (`bf16`).

use super::bf16::{self, Bf16Product, Panels16};
use super::gemm::gemm;
use super::isa::Isa;
use super::layout::{GemmScratch, Panels, NR};
use super::math::Act;

/// How a linear layer's weights are stored and multiplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// f32 weights and activations, f32 products: bit-for-bit the reference numerics.
    F32,
    /// bf16 weights and activations multiplied with AVX-512 BF16, accumulated in f32
    /// ([`bf16`]); only where the CPU has it.
    Bf16,
}

impl Precision {
    /// The fastest precision this CPU runs faithfully: bf16 where AVX-512 BF16 exists.
    pub fn best() -> Self {
        if bf16::supported() {
            Self::Bf16
        } else {
            Self::F32
        }
    }

    /// `self`, or f32 where the CPU cannot run it.
    pub fn or_supported(self) -> Self {
        match self {
            Self::Bf16 if !bf16::supported() => Self::F32,
            Self::Bf16 | Self::F32 => self,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            other => Err(format!(
                "unknown precision `{other}` (expected f32 or bf16)"
            )),
        }
    }
}

#[derive(Debug, Clone)]
enum Weights {
    F32(Panels),
    Bf16(Panels16),
}

/// A linear layer `y = x · W + b`, `W` packed once at load.
#[derive(Debug, Clone)]
pub struct PackedLinear {
    weight: Weights,
    inputs: usize,
    outputs: usize,
    /// `n` biases, zero-padded to a whole number of panels.
    bias: Vec<f32>,
}

impl PackedLinear {
    /// From a PyTorch-layout weight `(out, in)` (row-major) and its bias `(out)`, stored in
    /// `precision` (f32 where the CPU has no bf16 products); bf16 weights are multiplied by
    /// the [faster product](Bf16Product::fastest) of this CPU.
    pub fn from_torch(
        weight: &[f32],
        bias: &[f32],
        inputs: usize,
        outputs: usize,
        precision: Precision,
    ) -> Self {
        assert_eq!(weight.len(), inputs * outputs, "weight shape");
        assert_eq!(bias.len(), outputs, "bias shape");
        let bf16_panels = match precision {
            Precision::Bf16 => Panels16::from_torch(weight, inputs, outputs),
            Precision::F32 => None,
        };
        let weight = match bf16_panels {
            Some(mut panels) => {
                panels.multiply_by(Bf16Product::fastest());
                Weights::Bf16(panels)
            }
            None => {
                let mut panels = Panels::default();
                panels.pack_transposed(weight, inputs, inputs, outputs);
                Weights::F32(panels)
            }
        };
        let mut padded = bias.to_vec();
        padded.resize(outputs.div_ceil(NR) * NR, 0.0);
        Self {
            weight,
            inputs,
            outputs,
            bias: padded,
        }
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Multiplies bf16 weights by `product` from now on (f32 weights are left alone).
    pub fn multiply_bf16_by(&mut self, product: Bf16Product) {
        if let Weights::Bf16(panels) = &mut self.weight {
            panels.multiply_by(product);
        }
    }

    /// The product that multiplies the weights, `None` for f32 ones.
    pub fn bf16_product(&self) -> Option<Bf16Product> {
        match &self.weight {
            Weights::Bf16(panels) => Some(panels.product()),
            Weights::F32(_) => None,
        }
    }

    pub fn precision(&self) -> Precision {
        match self.weight {
            Weights::F32(_) => Precision::F32,
            Weights::Bf16(_) => Precision::Bf16,
        }
    }

    /// `y (m, n) = act(x (m, k) · W + b)`, both row-major and contiguous. Splits the work
    /// across rayon's threads when the product is big enough.
    pub fn forward(
        &self,
        isa: Isa,
        x: &[f32],
        m: usize,
        act: Act,
        y: &mut [f32],
        scratch: &mut GemmScratch,
    ) {
        let (k, n) = (self.inputs, self.outputs);
        match &self.weight {
            Weights::F32(panels) => gemm(
                isa,
                &x[..m * k],
                k,
                m,
                panels,
                Some(&self.bias),
                act,
                &mut y[..m * n],
                n,
                scratch,
                true,
            ),
            Weights::Bf16(panels) => bf16::gemm(
                panels,
                &x[..m * k],
                m,
                &self.bias,
                act,
                &mut y[..m * n],
                scratch,
            ),
        }
    }
}
