//! What a measure needs from a model: a loss on a batch.

use burn::module::Module;
use burn::prelude::{Backend, Tensor};

/// A model with a scalar loss on batches of its data.
///
/// `loss` must return the *mean* loss over the batch as a one-element tensor; sharpness is the
/// rise of this mean. Implementations must not depend on anything but the parameters and the
/// batch (evaluation mode: no dropout, no updates of running statistics).
pub trait Objective<B: Backend>: Module<B> {
    /// One batch of data (inputs and targets).
    type Batch;

    /// The mean loss on `batch`.
    fn loss(&self, batch: &Self::Batch) -> Tensor<B, 1>;
}
