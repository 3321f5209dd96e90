//! The loss landscape around a base point: the model, its parameters in block coordinates,
//! and evaluation of the loss and its gradient at perturbed points.

use burn::prelude::Tensor;
use burn::tensor::backend::AutodiffBackend;

use super::error::Error;
use super::objective::Objective;
use crate::geometry::{GeometryConfig, Product, Tangent};
use crate::params::ParamTable;
use crate::symmetry::{BlockLayout, Symmetry};

/// How the gradient with respect to ξ is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradientMode {
    /// ∇_ξ L(v(ξ)) exactly, through the geodesic step (autodiff; the spec's default).
    #[default]
    ThroughStep,
    /// ∇_v L at v = v(ξ), ignoring the step's Jacobian (cheaper for second-order steps).
    AtPoint,
}

/// A model at a base point w, with the block layout of its declared symmetries.
#[derive(Debug, Clone)]
pub struct Landscape<B: AutodiffBackend, M> {
    model: M,
    table: ParamTable,
    layout: BlockLayout,
    base: Vec<Tensor<B, 3>>,
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
        let base = layout.gather(&values);
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

    /// The base point in block coordinates.
    pub fn base(&self) -> &[Tensor<B, 3>] {
        &self.base
    }

    /// The model at the base point.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The geometry `config` at the base point.
    pub fn geometry(&self, config: &GeometryConfig) -> Result<Product<B>, Error> {
        Ok(Product::new(&self.layout, self.base.clone(), config)?)
    }

    /// The model with its parameters replaced by `point` (block coordinates).
    pub fn model_at(&self, point: Vec<Tensor<B, 3>>) -> M {
        self.table
            .load(self.model.clone(), self.layout.scatter(point))
    }

    /// L_B at `point`, without tracking gradients.
    pub fn loss_at(&self, point: Vec<Tensor<B, 3>>, batch: &M::Batch) -> Tensor<B, 1> {
        let point = point.into_iter().map(Tensor::detach).collect();
        self.model_at(point).loss(batch)
    }

    /// L_B(v(ξ)) and its gradient with respect to ξ (or to v, per `mode`), in block coordinates.
    /// One forward and one backward pass of the model.
    pub fn loss_and_gradient(
        &self,
        geometry: &Product<B>,
        xi: &Tangent<B>,
        batch: &M::Batch,
        mode: GradientMode,
    ) -> (Tensor<B, 1>, Tangent<B>) {
        let (leaves, point) = match mode {
            GradientMode::ThroughStep => {
                let leaves = xi.require_grad();
                let point = geometry.step(&leaves);
                (leaves, point)
            }
            GradientMode::AtPoint => {
                let point = Tangent::new(geometry.step(&xi.detach())).require_grad();
                (point.clone(), point.parts)
            }
        };
        let loss = self.model_at(point).loss(batch);
        let grads = loss.backward();
        let gradient = leaves.map(|leaf| match leaf.grad(&grads) {
            Some(g) => Tensor::from_inner(g),
            None => leaf.zeros_like().detach(),
        });
        (loss.detach(), gradient)
    }
}
