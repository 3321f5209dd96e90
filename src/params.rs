//! Reading and writing the float parameters of any Burn module, by path.
//!
//! Sharpness measures and sharpness-aware optimisers do not care what a model *is*: they need
//! its parameters as a list of tensors, a way to put perturbed values back, and stable names by
//! which a symmetry declaration can point at a tensor. [`ParamTable`] provides exactly that. It
//! walks a module with Burn's [`ModuleVisitor`], records every float parameter's dotted path
//! (`encoder.layer.0.attention.self.query.weight`, built from the field names and `Vec`
//! indices the `Module` derive reports), its [`ParamId`] and its shape, and hands out the values
//! flattened to rank 1. [`ParamTable::load`] writes a list of rank-1 values back with a
//! [`ModuleMapper`], reshaping each to its original shape and keeping its `ParamId`.
//!
//! Values written back may be *non-leaf* autodiff tensors: a perturbed point v(ξ) computed from
//! a tracked ξ stays attached to the graph, so one backward pass of the loss yields ∇_ξ.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::{Backend, Tensor};

/// One float parameter of a module: its id, dotted path and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamEntry {
    /// Burn's identifier of the parameter; stable across `map`.
    pub id: ParamId,
    /// Dotted path from the module root, e.g. `encoder.layer.3.output.dense.weight`.
    pub path: String,
    /// Shape of the parameter tensor as stored in the Burn module.
    pub shape: Vec<usize>,
}

impl ParamEntry {
    /// Number of scalar entries.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The ordered list of a module's float parameters.
#[derive(Debug, Clone, Default)]
pub struct ParamTable {
    entries: Vec<ParamEntry>,
    by_path: HashMap<String, usize>,
    by_id: HashMap<ParamId, usize>,
}

impl ParamTable {
    /// Reads the float parameters of `model`, returning the table and the values flattened to
    /// rank 1 and detached from any autodiff graph, in visiting order.
    pub fn read<B: Backend, M: Module<B>>(model: &M) -> (Self, Vec<Tensor<B, 1>>) {
        let mut reader = Reader::<B> {
            stack: Vec::new(),
            entries: Vec::new(),
            values: Vec::new(),
        };
        model.visit(&mut reader);
        (Self::from_entries(reader.entries), reader.values)
    }

    /// Builds a table from entries (paths must be unique).
    pub fn from_entries(entries: Vec<ParamEntry>) -> Self {
        let by_path = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.path.clone(), i))
            .collect();
        let by_id = entries.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
        Self {
            entries,
            by_path,
            by_id,
        }
    }

    /// Writes `values` (one rank-1 tensor per entry, in table order) into `model`, reshaping
    /// each to its parameter's shape. Parameters not in the table are left untouched.
    ///
    /// # Panics
    /// If `values.len()` differs from the table length or a value has the wrong length; both
    /// are programming errors inside geosharp, never caused by user input.
    pub fn load<B: Backend, M: Module<B>>(&self, model: M, values: Vec<Tensor<B, 1>>) -> M {
        assert_eq!(values.len(), self.entries.len(), "one value per parameter");
        let mut writer = Writer {
            table: self,
            values: values.into_iter().map(Some).collect(),
            trainable: false,
        };
        model.map(&mut writer)
    }

    /// Like [`load`](Self::load), but every written parameter is made a leaf that tracks
    /// gradients *after* reshaping to its parameter's shape, so that Burn's
    /// [`GradientsParams`](burn::optim::GradientsParams) finds its gradient (a reshaped leaf is
    /// an intermediate node, whose gradient Burn does not keep). `values` should be untracked.
    ///
    /// # Panics
    /// As [`load`](Self::load).
    pub fn load_trainable<B: Backend, M: Module<B>>(
        &self,
        model: M,
        values: Vec<Tensor<B, 1>>,
    ) -> M {
        assert_eq!(values.len(), self.entries.len(), "one value per parameter");
        let mut writer = Writer {
            table: self,
            values: values.into_iter().map(Some).collect(),
            trainable: true,
        };
        model.map(&mut writer)
    }

    /// The entries, in visiting order.
    pub fn entries(&self) -> &[ParamEntry] {
        &self.entries
    }

    /// Number of parameter tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the module has no float parameters.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Index of the parameter with this dotted path.
    pub fn index_of(&self, path: &str) -> Option<usize> {
        self.by_path.get(path).copied()
    }

    /// Total number of scalar parameters.
    pub fn numel(&self) -> usize {
        self.entries.iter().map(ParamEntry::numel).sum()
    }
}

/// `model` with every float parameter made a gradient-tracking leaf: what an optimiser needs of
/// a model whose weights were loaded with [`ParamTable::load`] (untracked, as every
/// checkpoint loader here writes them).
pub fn trainable<B: burn::tensor::backend::AutodiffBackend, M: Module<B>>(model: M) -> M {
    let (table, values) = ParamTable::read(&model);
    // Back through the inner backend, so each value is a fresh untracked leaf.
    let values = values
        .into_iter()
        .map(|v| Tensor::from_inner(v.inner()))
        .collect();
    table.load_trainable(model, values)
}

/// Runs `init` (which draws from Burn's random generator, as module constructors do) with the
/// generator of backend `B` seeded by `seed`, holding the process-wide generator lock (see
/// [`drawing`]).
///
/// Burn keeps one generator per backend for the whole process. Two threads that each seed it
/// and then draw — parallel tests, or two runs started side by side — interleave their draws,
/// and a seed stops naming one model. `init` must draw everything it needs before returning
/// (see [`materialize`]: Burn's parameters are lazy).
pub fn seeded<B: Backend, T>(device: &B::Device, seed: u64, init: impl FnOnce() -> T) -> T {
    drawing(|| {
        B::seed(device, seed);
        init()
    })
}

/// Runs `draw` holding the process-wide lock on Burn's random generators.
///
/// A seed names one model only if nothing else draws between the seeding and the last draw of
/// its initialisation: one *unlocked* draw on another thread (a fresh head for an unrelated
/// model, say) shifts the stream. So every draw in geosharp goes through this lock —
/// [`seeded`] and [`materialize`] take it, and constructors that draw eagerly wrap their body
/// in it — and a seed gives the same weights whatever else the process is doing.
///
/// The lock is reentrant on one thread: a constructor that takes it may run inside [`seeded`].
/// It is held across `draw`, so `draw` must not wait on another thread that draws.
pub fn drawing<T>(draw: impl FnOnce() -> T) -> T {
    use std::cell::Cell;
    use std::sync::{Mutex, PoisonError};
    static GENERATOR: Mutex<()> = Mutex::new(());
    thread_local! {
        /// Whether this thread holds [`GENERATOR`] already (further up its stack).
        static HELD: Cell<bool> = const { Cell::new(false) };
    }
    if HELD.get() {
        return draw();
    }
    let _guard = GENERATOR.lock().unwrap_or_else(PoisonError::into_inner);
    /// Clears `HELD` when `draw` returns or unwinds, before the lock is released.
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            HELD.set(false);
        }
    }
    HELD.set(true);
    let _release = Release;
    draw()
}

/// Forces every lazily initialised parameter of `model` to take its value now, holding the
/// generator lock (see [`drawing`]).
///
/// Burn initialises parameters lazily, and cloning a parameter that has not been read yet
/// gives the clone its own lazy *random* initialiser: `model.clone()` of a fresh module can be
/// a different model. Constructors in [`crate::models`] call this so that a model is one set of
/// weights from the moment it exists.
pub fn materialize<B: Backend, M: Module<B>>(model: M) -> M {
    struct Materialize;
    impl<B: Backend> ModuleMapper<B> for Materialize {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, value, mapper) = param.consume();
            Param::from_mapped_value(id, value, mapper)
        }
    }
    drawing(|| model.map(&mut Materialize))
}

struct Reader<B: Backend> {
    stack: Vec<String>,
    entries: Vec<ParamEntry>,
    values: Vec<Tensor<B, 1>>,
}

impl<B: Backend> ModuleVisitor<B> for Reader<B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val().detach();
        let shape = value.dims().to_vec();
        let numel = shape.iter().product::<usize>();
        self.entries.push(ParamEntry {
            id: param.id,
            path: self.stack.join("."),
            shape,
        });
        self.values.push(value.reshape([numel]));
    }
}

struct Writer<'a, B: Backend> {
    table: &'a ParamTable,
    values: Vec<Option<Tensor<B, 1>>>,
    trainable: bool,
}

impl<B: Backend> ModuleMapper<B> for Writer<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, old, mapper) = param.consume();
        let Some(&index) = self.table.by_id.get(&id) else {
            return Param::from_mapped_value(id, old, mapper);
        };
        let value = self.values[index]
            .take()
            .expect("each parameter is written once");
        let dims: [usize; D] = old.dims();
        let value = value.reshape(dims);
        let value = if self.trainable {
            value.require_grad()
        } else {
            value
        };
        Param::from_mapped_value(id, value, mapper)
    }
}
