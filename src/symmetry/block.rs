//! What a model declares: its symmetry blocks.
//!
//! A block is a set of parameter tensors together with a group acting on them that leaves the
//! loss unchanged (spec §1):
//!
//! | declaration | parameters | group action |
//! |---|---|---|
//! | [`Symmetry::GlPair`] | per head, G ∈ R^{n×h}, H ∈ R^{m×h}, used only through G Hᵀ | (G, H) ↦ (G A⁻¹, H Aᵀ), A ∈ GL(h) |
//! | [`Symmetry::Rescale`] | u, v ∈ R^d, used only through u ⊙ v | (u, v) ↦ (a ⊙ u, v ⊘ a), a > 0 |
//!
//! Every parameter that no declaration names is an *elementwise* block (no symmetry
//! quotiented). Declarations name tensors by their dotted path in the Burn module (see
//! [`crate::params`]), so they read like the checkpoint they come from.
//!
//! # Head layout
//! Burn's `Linear` stores its weight as `[d_input, d_output]` (the transpose of PyTorch's
//! `[out, in]`). For attention with `heads` heads of dimension h:
//! * the query, key and value weights are `[d_model, heads·h]`: head i is the column slice
//!   `[:, i·h..(i+1)·h]`, which *is* W_Q⁽ⁱ⁾ — [`HeadAxis::Columns`];
//! * the output weight is `[heads·h, d_model]`: head i is the row slice `[i·h..(i+1)·h, :]`, and
//!   H = W_O⁽ⁱ⁾ᵀ is that slice transposed — [`HeadAxis::Rows`].
//!
//! A bias of the Q, K or V projection can be *folded* into its factor as an extra row
//! (G = [W_Q; b_Qᵀ]), because the group acts on it too (b_Q ↦ A⁻ᵀ b_Q). Folding is the default;
//! leaving biases as elementwise blocks keeps the loss invariant but not the measure
//! (spec §1: ratios of about 4.4 under a random per-head A).

/// Where the heads of a factor sit inside its weight tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HeadAxis {
    /// The weight is `[rows, heads·h]`; head i is the column slice `[:, i·h..(i+1)·h]`, taken
    /// as is (an `[rows, h]` factor). Burn `Linear` weights of Q, K, V.
    Columns,
    /// The weight is `[heads·h, cols]`; head i is the row slice `[i·h..(i+1)·h, :]`,
    /// transposed (a `[cols, h]` factor). Burn `Linear` weight of the attention output.
    Rows,
}

/// One side (G or H) of a GL(h) pair: a weight tensor, where its heads are, and an optional
/// bias folded in as an extra row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Factor {
    /// Dotted path of the weight tensor (rank 2).
    pub weight: String,
    /// Where the heads sit in the weight.
    pub axis: HeadAxis,
    /// Dotted path of a bias of length `heads·h` appended to every head's factor as a last
    /// row, or `None`.
    pub bias: Option<String>,
}

impl Factor {
    /// A factor without a folded bias.
    pub fn new(weight: impl Into<String>, axis: HeadAxis) -> Self {
        Self {
            weight: weight.into(),
            axis,
            bias: None,
        }
    }

    /// The same factor with `bias` folded in as an extra row.
    pub fn with_bias(mut self, bias: impl Into<String>) -> Self {
        self.bias = Some(bias.into());
        self
    }
}

/// Whether the biases of the Q, K and V projections join their GL(h) factors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum BiasFolding {
    /// Append each bias as an extra row of its head's factor (invariant; the default).
    #[default]
    Fold,
    /// Leave biases as elementwise blocks (the loss stays invariant, the measure does not).
    Unfolded,
}

/// A symmetry a model declares over some of its parameters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Symmetry {
    /// `heads` independent GL(h) pairs (G⁽ⁱ⁾, H⁽ⁱ⁾), used only through G⁽ⁱ⁾ H⁽ⁱ⁾ᵀ.
    GlPair {
        /// A name for reports, e.g. `encoder.layer.0.attention.qk`.
        name: String,
        /// The G side.
        g: Factor,
        /// The H side.
        h: Factor,
        /// Number of heads; h = (head axis size) / heads.
        heads: usize,
    },
    /// Elementwise GL(1) rescaling: u and v of equal shape, used only through u ⊙ v.
    Rescale {
        /// A name for reports.
        name: String,
        /// Dotted path of u.
        u: String,
        /// Dotted path of v.
        v: String,
    },
}

impl Symmetry {
    /// The query–key pair of a multi-head attention whose projections live at
    /// `{prefix}.{query,key}.{weight,bias}` (Burn `Linear`, `[d_model, heads·h]`).
    pub fn attention_qk(
        name: impl Into<String>,
        query: &str,
        key: &str,
        heads: usize,
        folding: BiasFolding,
    ) -> Self {
        Self::GlPair {
            name: name.into(),
            g: linear_factor(query, HeadAxis::Columns, folding),
            h: linear_factor(key, HeadAxis::Columns, folding),
            heads,
        }
    }

    /// The value–output pair: G = [W_V; b_Vᵀ] per head, H = W_O⁽ⁱ⁾ᵀ (the output bias is not
    /// part of the symmetry).
    pub fn attention_vo(
        name: impl Into<String>,
        value: &str,
        output: &str,
        heads: usize,
        folding: BiasFolding,
    ) -> Self {
        Self::GlPair {
            name: name.into(),
            g: linear_factor(value, HeadAxis::Columns, folding),
            h: Factor::new(format!("{output}.weight"), HeadAxis::Rows),
            heads,
        }
    }

    /// The name given to the block.
    pub fn name(&self) -> &str {
        match self {
            Self::GlPair { name, .. } | Self::Rescale { name, .. } => name,
        }
    }
}

fn linear_factor(prefix: &str, axis: HeadAxis, folding: BiasFolding) -> Factor {
    let factor = Factor::new(format!("{prefix}.weight"), axis);
    match folding {
        BiasFolding::Fold => factor.with_bias(format!("{prefix}.bias")),
        BiasFolding::Unfolded => factor,
    }
}

/// A model that declares its symmetry blocks.
///
/// Parameters that no returned [`Symmetry`] names are elementwise blocks. Returning an empty
/// list is always correct (nothing is quotiented); the geodesic measures then reduce to adaptive
/// sharpness.
pub trait Symmetric {
    /// The model's symmetries, naming parameters by dotted path.
    fn symmetries(&self) -> Vec<Symmetry>;
}
