//! Gradients as the optimisers need them: accumulated over micro-batches, and flattened in the
//! order of [`ParamTable`](crate::params::ParamTable) for the geometry.
//!
//! Burn keys gradients by [`ParamId`](burn::module::ParamId) in a [`GradientsParams`], which is
//! what a base optimiser consumes; the geometry works on flat per-parameter tensors. The
//! conversion visits the module, where each parameter's rank is known statically.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::Tensor;
use burn::tensor::backend::AutodiffBackend;

use super::error::Error;
use crate::host::scalar;

/// Inner backend of `B`.
type Inner<B> = <B as AutodiffBackend>::InnerBackend;

/// The gradient of the mean loss over `micro_batches` equally weighted micro-batches, and that
/// mean loss: one backward pass per micro-batch, with `loss(model, i)` the mean loss of
/// micro-batch `i`. Each micro-batch's loss is divided by their number before its backward
/// pass, so the accumulated sum is the mean.
pub(crate) fn accumulate<B, M, F>(
    model: &M,
    micro_batches: usize,
    loss: &mut F,
    pass: &'static str,
) -> Result<(f64, GradientsParams), Error>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    F: FnMut(&M, usize) -> Tensor<B, 1>,
{
    if micro_batches == 0 {
        return Err(Error::NoMicroBatches);
    }
    let mut accumulator = GradientsAccumulator::<M>::new();
    let mut total = 0.0;
    for i in 0..micro_batches {
        let value = loss(model, i);
        let value = if micro_batches == 1 {
            value
        } else {
            value.div_scalar(micro_batches as f64)
        };
        total += scalar(value.clone().inner());
        accumulator.accumulate(model, GradientsParams::from_grads(value.backward(), model));
    }
    if !total.is_finite() {
        return Err(Error::NonFiniteLoss { pass, value: total });
    }
    Ok((total, accumulator.grads()))
}

/// Each parameter's gradient flattened to rank 1, in the module's visiting order (the order of
/// [`ParamTable::read`](crate::params::ParamTable::read)); `None` where the parameter got no
/// gradient (frozen parameters, and running statistics, which Burn visits as parameters).
pub(crate) fn flatten<B, M>(model: &M, grads: &GradientsParams) -> Vec<Option<Tensor<Inner<B>, 1>>>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    struct Flatten<'a, B: AutodiffBackend> {
        grads: &'a GradientsParams,
        out: Vec<Option<Tensor<Inner<B>, 1>>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Flatten<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let g = self.grads.get::<Inner<B>, D>(param.id).map(|g| {
                let n = g.dims().iter().product::<usize>();
                g.reshape([n])
            });
            self.out.push(g);
        }
    }
    let mut visitor = Flatten::<B> {
        grads,
        out: Vec::new(),
    };
    model.visit(&mut visitor);
    visitor.out
}
