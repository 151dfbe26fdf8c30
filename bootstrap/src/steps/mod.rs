//! The steps `bootstrap` runs, one module each (see [`crate::step::Step`]).

pub mod exec;
pub mod files;
pub mod keys;
pub mod polkit;
pub mod sudo;
pub mod user;

#[cfg(test)]
mod testroot;
