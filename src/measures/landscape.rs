//! The loss landscape around a base point: the model, its parameters in block coordinates,
//! and evaluation of the loss and its gradient at perturbed points.
//!
//! Everything but the model's own forward and backward pass runs on the autodiff backend's
//! *inner* backend (same device, no graph): the base point, the geometry, tangent vectors and
//! every solver's bookkeeping. Burn's autodiff registers even untracked operations in its graph
//! until a backward pass frees them, and its clean-up is linear in the graph's size, so
//! thousands of untracked geometry operations slowed every later backward pass down (and grew
//! memory). The gradient through the geodesic step is the step's explicit vector–Jacobian
//! product ([`Product::step_vjp`]) instead of autodiff through the step.

use burn::prelude::Tensor;
use burn::tensor::backend::AutodiffBackend;

use super::error::Error;
use super::objective::Objective;
use crate::geometry::{GeometryConfig, Product, Tangent};
use crate::params::ParamTable;
use crate::symmetry::{BlockLayout, Symmetry};

/// The inner (non-autodiff) backend of `B`.
pub type Inner<B> = <B as AutodiffBackend>::InnerBackend;

/// How the gradient with respect to ξ is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradientMode {
    /// ∇_ξ L(v(ξ)) = J_v(ξ)ᵀ ∇_v L exactly, through the geodesic step (the spec's default).
    #[default]
    ThroughStep,
    /// ∇_v L at v = v(ξ), ignoring the step's Jacobian.
    AtPoint,
}

/// A model at a base point w, with the block layout of its declared symmetries.
#[derive(Debug, Clone)]
pub struct Landscape<B: AutodiffBackend, M> {
    model: M,
    table: ParamTable,
    layout: BlockLayout,
    base: Vec<Tensor<Inner<B>, 3>>,
}

impl<B: AutodiffBackend, M: Objective<B>> Landscape<B, M> {
    /// The landscape of `model` at its current weights, with `symmetries` resolved against its
    /// parameters.
    pub fn new(model: M, symmetries: &[Symmetry]) -> Result<Self, Error> {
        let (table, values) = ParamTable::read(&model);
        if table.is_empty() {
            return Err(Error::NoParameters);
        }
        let layout = BlockLayout::new(&table, symmetries)?;
        let inner: Vec<_> = values.into_iter().map(|v| v.inner()).collect();
        let base = layout.gather(&inner);
        Ok(Self {
            model,
            table,
            layout,
            base,
        })
    }

    /// The block layout.
    pub fn layout(&self) -> &BlockLayout {
        &self.layout
    }

    /// The parameter table.
    pub fn table(&self) -> &ParamTable {
        &self.table
    }

    /// The base point in block coordinates (inner backend).
    pub fn base(&self) -> &[Tensor<Inner<B>, 3>] {
        &self.base
    }

    /// The model at the base point.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The geometry `config` at the base point.
    pub fn geometry(&self, config: &GeometryConfig) -> Result<Product<Inner<B>>, Error> {
        Ok(Product::new(&self.layout, self.base.clone(), config)?)
    }

    fn load(&self, params: Vec<Tensor<B, 1>>) -> M {
        self.table.load(self.model.clone(), params)
    }

    /// The model with its parameters replaced by `point` (block coordinates, untracked).
    pub fn model_at(&self, point: Vec<Tensor<Inner<B>, 3>>) -> M {
        self.load(
            self.layout
                .scatter(point)
                .into_iter()
                .map(Tensor::from_inner)
                .collect(),
        )
    }

    /// L_B at `point`, without tracking gradients, as an inner one-element tensor.
    pub fn loss_at(
        &self,
        point: Vec<Tensor<Inner<B>, 3>>,
        batch: &M::Batch,
    ) -> Tensor<Inner<B>, 1> {
        self.model_at(point).loss(batch).inner()
    }

    /// L_B at `point` (block coordinates) and its Euclidean gradient there, in block
    /// coordinates: one forward and one backward pass of the model with respect to every
    /// parameter, the unit in which the cost of every solver is measured.
    pub fn loss_and_gradient_at(
        &self,
        point: Vec<Tensor<Inner<B>, 3>>,
        batch: &M::Batch,
    ) -> (Tensor<Inner<B>, 1>, Tangent<Inner<B>>) {
        let leaves: Vec<Tensor<B, 1>> = self
            .layout
            .scatter(point)
            .into_iter()
            .map(|p| Tensor::from_inner(p).require_grad())
            .collect();
        let loss = self.load(leaves.clone()).loss(batch);
        let grads = loss.backward();
        let flat: Vec<_> = leaves
            .iter()
            .map(|leaf| {
                leaf.grad(&grads)
                    .unwrap_or_else(|| leaf.clone().inner().zeros_like())
            })
            .collect();
        (loss.inner(), Tangent::new(self.layout.gather(&flat)))
    }

    /// L_B(v(ξ)) and its gradient with respect to ξ (or to v, per `mode`), in block coordinates.
    /// One forward and one backward pass of the model.
    pub fn loss_and_gradient(
        &self,
        geometry: &Product<Inner<B>>,
        xi: &Tangent<Inner<B>>,
        batch: &M::Batch,
        mode: GradientMode,
    ) -> (Tensor<Inner<B>, 1>, Tangent<Inner<B>>) {
        let (loss, at_point) = self.loss_and_gradient_at(geometry.step(xi), batch);
        let gradient = match mode {
            GradientMode::AtPoint => at_point,
            GradientMode::ThroughStep => geometry.step_vjp(xi, &at_point),
        };
        (loss, gradient)
    }
}
