//! Progress reporting without printing: the library calls a [`Progress`], the CLI draws bars.

/// Receives progress events from long computations. Every method has a no-op default.
pub trait Progress {
    /// A stage with `total` steps begins.
    fn begin(&mut self, label: &str, total: u64) {
        let _ = (label, total);
    }
    /// `delta` steps completed.
    fn advance(&mut self, delta: u64) {
        let _ = delta;
    }
    /// The current stage ended.
    fn end(&mut self) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}
