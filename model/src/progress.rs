//! Progress of long operations (the package manager), for bootstrap's human output.

/// Receives progress from long steps (the package manager), for the human output.
pub trait Progress {
    fn tick(&self, _message: &str) {}
}

/// Discards progress.
pub struct Quiet;
impl Progress for Quiet {}
