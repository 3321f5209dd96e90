//! Block coordinates: the parameter list rearranged by symmetry block.
//!
//! The geometry works on *parts*, rank-3 tensors that a block's formulas can use directly:
//!
//! | block | parts |
//! |---|---|
//! | GL(h) pair, `heads` heads | G `[heads, n, h]`, H `[heads, m, h]` (n, m include a folded bias row) |
//! | GL(1) rescaling | u `[1, 1, d]`, v `[1, 1, d]` |
//! | elementwise | x `[1, 1, N]` |
//!
//! so every per-head matrix product is one batched matmul. [`BlockLayout::gather`] builds the
//! parts from the flat parameter list of [`crate::params::ParamTable`] and
//! [`BlockLayout::scatter`] puts them back; both are a handful of reshapes, transposes and
//! concatenations per block, and exact inverses of each other.

use std::ops::Range;

use burn::prelude::{Backend, Tensor};

use super::block::{Factor, HeadAxis, Symmetry};
use super::error::Error;
use crate::params::ParamTable;

/// The kind of a resolved block, with its sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum BlockKind {
    /// `heads` GL(h) pairs with h = `head_dim`; G has `g_rows` rows, H has `h_rows`.
    GlPair {
        /// Number of heads (independent pairs).
        heads: usize,
        /// h, the size of each head.
        head_dim: usize,
        /// Rows n of each G⁽ⁱ⁾ (including a folded bias row).
        g_rows: usize,
        /// Rows m of each H⁽ⁱ⁾ (including a folded bias row).
        h_rows: usize,
    },
    /// A GL(1) rescaling pair of `len` coordinates.
    Rescale {
        /// d, the length of u and of v.
        len: usize,
    },
    /// One parameter tensor with no symmetry quotiented.
    Elementwise {
        /// Number of entries.
        len: usize,
    },
}

/// How one part is cut out of the parameter list.
#[derive(Debug, Clone)]
enum PartSource {
    /// A whole parameter, as `[1, 1, numel]`.
    Whole { param: usize, numel: usize },
    /// A per-head factor of a GL(h) pair.
    Heads {
        weight: usize,
        bias: Option<usize>,
        axis: HeadAxis,
        heads: usize,
        head_dim: usize,
        /// The weight's dimension that is not split by heads.
        other: usize,
    },
}

/// A resolved block: a name, a kind and where its parts come from.
#[derive(Debug, Clone)]
pub struct Block {
    /// Name for reports: the declared name, or the parameter path of an elementwise block.
    pub name: String,
    /// Kind and sizes.
    pub kind: BlockKind,
    /// Indices (into the [`ParamTable`]) of the parameters this block covers.
    pub params: Vec<usize>,
    sources: Vec<PartSource>,
}

/// The assignment of every parameter to exactly one block, and the maps between the flat
/// parameter list and block coordinates.
#[derive(Debug, Clone)]
pub struct BlockLayout {
    blocks: Vec<Block>,
    ranges: Vec<Range<usize>>,
    n_params: usize,
}

impl BlockLayout {
    /// Resolves `symmetries` against `table`. Declared blocks come first, in declaration order,
    /// then one elementwise block per remaining parameter, in table order.
    pub fn new(table: &ParamTable, symmetries: &[Symmetry]) -> Result<Self, Error> {
        let mut owner: Vec<Option<String>> = vec![None; table.len()];
        let mut blocks = Vec::with_capacity(symmetries.len() + table.len());
        for symmetry in symmetries {
            let block = resolve(table, symmetry)?;
            for &p in &block.params {
                if let Some(first) = &owner[p] {
                    return Err(Error::Overlap {
                        path: table.entries()[p].path.clone(),
                        first: first.clone(),
                        second: block.name.clone(),
                    });
                }
                owner[p] = Some(block.name.clone());
            }
            blocks.push(block);
        }
        for (p, entry) in table.entries().iter().enumerate() {
            if owner[p].is_none() {
                blocks.push(Block {
                    name: entry.path.clone(),
                    kind: BlockKind::Elementwise { len: entry.numel() },
                    params: vec![p],
                    sources: vec![PartSource::Whole {
                        param: p,
                        numel: entry.numel(),
                    }],
                });
            }
        }
        let mut ranges = Vec::with_capacity(blocks.len());
        let mut start = 0;
        for block in &blocks {
            ranges.push(start..start + block.sources.len());
            start += block.sources.len();
        }
        Ok(Self {
            blocks,
            ranges,
            n_params: table.len(),
        })
    }

    /// The layout with every parameter its own elementwise block (no symmetry).
    pub fn elementwise(table: &ParamTable) -> Self {
        Self::new(table, &[]).expect("an empty declaration always resolves")
    }

    /// The blocks, in part order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// The range of parts that belongs to block `b`.
    pub fn parts_of(&self, b: usize) -> Range<usize> {
        self.ranges[b].clone()
    }

    /// Total number of parts.
    pub fn n_parts(&self) -> usize {
        self.ranges.last().map_or(0, |r| r.end)
    }

    /// Number of parameter tensors the layout covers.
    pub fn n_params(&self) -> usize {
        self.n_params
    }

    /// Builds the parts of every block from the flat parameter values (table order).
    pub fn gather<B: Backend>(&self, params: &[Tensor<B, 1>]) -> Vec<Tensor<B, 3>> {
        let mut parts = Vec::with_capacity(self.n_parts());
        for block in &self.blocks {
            for source in &block.sources {
                parts.push(gather_part(source, params));
            }
        }
        parts
    }

    /// Puts block parts back into a flat parameter list (table order); the inverse of
    /// [`gather`](Self::gather).
    pub fn scatter<B: Backend>(&self, parts: Vec<Tensor<B, 3>>) -> Vec<Tensor<B, 1>> {
        assert_eq!(parts.len(), self.n_parts(), "one tensor per part");
        let mut out: Vec<Option<Tensor<B, 1>>> = vec![None; self.n_params];
        let sources = self.blocks.iter().flat_map(|b| b.sources.iter());
        for (source, part) in sources.zip(parts) {
            scatter_part(source, part, &mut out);
        }
        out.into_iter()
            .map(|t| t.expect("every parameter belongs to exactly one block"))
            .collect()
    }
}

fn gather_part<B: Backend>(source: &PartSource, params: &[Tensor<B, 1>]) -> Tensor<B, 3> {
    match *source {
        PartSource::Whole { param, numel } => params[param].clone().reshape([1, 1, numel]),
        PartSource::Heads {
            weight,
            bias,
            axis,
            heads,
            head_dim,
            other,
        } => {
            let w = params[weight].clone();
            let g = match axis {
                HeadAxis::Columns => w.reshape([other, heads, head_dim]).swap_dims(0, 1),
                HeadAxis::Rows => w.reshape([heads, head_dim, other]).swap_dims(1, 2),
            };
            match bias {
                Some(b) => {
                    let row = params[b].clone().reshape([heads, 1, head_dim]);
                    Tensor::cat(vec![g, row], 1)
                }
                None => g,
            }
        }
    }
}

fn scatter_part<B: Backend>(
    source: &PartSource,
    part: Tensor<B, 3>,
    out: &mut [Option<Tensor<B, 1>>],
) {
    match *source {
        PartSource::Whole { param, numel } => out[param] = Some(part.reshape([numel])),
        PartSource::Heads {
            weight,
            bias,
            axis,
            heads,
            head_dim,
            other,
        } => {
            let n = heads * head_dim * other;
            let g = match bias {
                Some(b) => {
                    let row = part.clone().narrow(1, other, 1);
                    out[b] = Some(row.reshape([heads * head_dim]));
                    part.narrow(1, 0, other)
                }
                None => part,
            };
            let w = match axis {
                HeadAxis::Columns => g.swap_dims(0, 1),
                HeadAxis::Rows => g.swap_dims(1, 2),
            };
            out[weight] = Some(w.reshape([n]));
        }
    }
}

fn lookup(table: &ParamTable, block: &str, path: &str) -> Result<usize, Error> {
    table.index_of(path).ok_or_else(|| Error::UnknownParameter {
        block: block.to_string(),
        path: path.to_string(),
    })
}

/// Resolves one factor: returns its part source and (rows, head_dim).
fn resolve_factor(
    table: &ParamTable,
    block: &str,
    factor: &Factor,
    heads: usize,
) -> Result<(PartSource, Vec<usize>, usize, usize), Error> {
    let weight = lookup(table, block, &factor.weight)?;
    let shape = &table.entries()[weight].shape;
    let [rows, cols] = shape[..] else {
        return Err(Error::NotAMatrix {
            block: block.to_string(),
            path: factor.weight.clone(),
            shape: shape.clone(),
        });
    };
    let (split, other) = match factor.axis {
        HeadAxis::Columns => (cols, rows),
        HeadAxis::Rows => (rows, cols),
    };
    if heads == 0 || split % heads != 0 {
        return Err(Error::HeadsDoNotDivide {
            block: block.to_string(),
            path: factor.weight.clone(),
            size: split,
            heads,
        });
    }
    let head_dim = split / heads;
    let mut params = vec![weight];
    let bias = match &factor.bias {
        None => None,
        Some(path) => {
            if factor.axis == HeadAxis::Rows {
                return Err(Error::BiasOnRows {
                    block: block.to_string(),
                    path: path.clone(),
                });
            }
            let b = lookup(table, block, path)?;
            let found = table.entries()[b].shape.clone();
            if found != [split] {
                return Err(Error::BiasShape {
                    block: block.to_string(),
                    path: path.clone(),
                    expected: split,
                    found,
                });
            }
            params.push(b);
            Some(b)
        }
    };
    let rows = other + usize::from(bias.is_some());
    let source = PartSource::Heads {
        weight,
        bias,
        axis: factor.axis,
        heads,
        head_dim,
        other,
    };
    Ok((source, params, rows, head_dim))
}

fn resolve(table: &ParamTable, symmetry: &Symmetry) -> Result<Block, Error> {
    match symmetry {
        Symmetry::GlPair { name, g, h, heads } => {
            let (gs, mut params, g_rows, g_dim) = resolve_factor(table, name, g, *heads)?;
            let (hs, h_params, h_rows, h_dim) = resolve_factor(table, name, h, *heads)?;
            if g_dim != h_dim {
                return Err(Error::HeadDimMismatch {
                    block: name.clone(),
                    g: g_dim,
                    h: h_dim,
                });
            }
            params.extend(h_params);
            Ok(Block {
                name: name.clone(),
                kind: BlockKind::GlPair {
                    heads: *heads,
                    head_dim: g_dim,
                    g_rows,
                    h_rows,
                },
                params,
                sources: vec![gs, hs],
            })
        }
        Symmetry::Rescale { name, u, v } => {
            let pu = lookup(table, name, u)?;
            let pv = lookup(table, name, v)?;
            let (su, sv) = (&table.entries()[pu].shape, &table.entries()[pv].shape);
            if su != sv {
                return Err(Error::RescaleShape {
                    block: name.clone(),
                    u: su.clone(),
                    v: sv.clone(),
                });
            }
            let len = table.entries()[pu].numel();
            Ok(Block {
                name: name.clone(),
                kind: BlockKind::Rescale { len },
                params: vec![pu, pv],
                sources: vec![
                    PartSource::Whole {
                        param: pu,
                        numel: len,
                    },
                    PartSource::Whole {
                        param: pv,
                        numel: len,
                    },
                ],
            })
        }
    }
}
