//! Errors raised while resolving a symmetry declaration against a model.

/// A symmetry declaration that does not fit the model it is declared on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A declaration names a parameter the model does not have.
    #[error(
        "symmetry block '{block}' names parameter '{path}', which the model does not have; \
         check the path against the model's parameter list (`geosharp` prints it with --verbose)"
    )]
    UnknownParameter {
        /// The declaring block.
        block: String,
        /// The missing dotted path.
        path: String,
    },
    /// One parameter is claimed by two blocks.
    #[error("parameter '{path}' is claimed by two symmetry blocks, '{first}' and '{second}'")]
    Overlap {
        /// The parameter.
        path: String,
        /// The first block claiming it.
        first: String,
        /// The second block claiming it.
        second: String,
    },
    /// A GL(h) factor is not a matrix.
    #[error("symmetry block '{block}': '{path}' has shape {shape:?}, expected a matrix")]
    NotAMatrix {
        /// The declaring block.
        block: String,
        /// The parameter.
        path: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// The head axis is not a multiple of the head count.
    #[error(
        "symmetry block '{block}': '{path}' has {size} entries along its head axis, \
         which {heads} heads do not divide; is the head count from the same config?"
    )]
    HeadsDoNotDivide {
        /// The declaring block.
        block: String,
        /// The parameter.
        path: String,
        /// Size of the head axis.
        size: usize,
        /// Declared head count.
        heads: usize,
    },
    /// G and H of a pair have different head sizes.
    #[error(
        "symmetry block '{block}': G has heads of size {g} but H has heads of size {h}; \
         both sides of a GL(h) pair need the same head count and head size"
    )]
    HeadDimMismatch {
        /// The declaring block.
        block: String,
        /// Head size of G.
        g: usize,
        /// Head size of H.
        h: usize,
    },
    /// A folded bias has the wrong length.
    #[error("symmetry block '{block}': bias '{path}' has shape {found:?}, expected [{expected}]")]
    BiasShape {
        /// The declaring block.
        block: String,
        /// The bias parameter.
        path: String,
        /// Expected length (heads·h).
        expected: usize,
        /// Its shape.
        found: Vec<usize>,
    },
    /// A bias was declared on a factor whose heads are rows; such a bias is not per-head.
    #[error(
        "symmetry block '{block}': bias '{path}' is declared on a row-split factor, whose bias \
         is not per head; leave it out of the symmetry (it stays elementwise)"
    )]
    BiasOnRows {
        /// The declaring block.
        block: String,
        /// The bias parameter.
        path: String,
    },
    /// The two sides of a rescaling differ in shape.
    #[error("rescaling block '{block}': u has shape {u:?} but v has shape {v:?}")]
    RescaleShape {
        /// The declaring block.
        block: String,
        /// Shape of u.
        u: Vec<usize>,
        /// Shape of v.
        v: Vec<usize>,
    },
    /// A group element does not fit the block it acts on.
    #[error("group action on block '{block}': {reason}")]
    BadAction {
        /// The block acted on.
        block: String,
        /// What does not fit.
        reason: String,
    },
}
