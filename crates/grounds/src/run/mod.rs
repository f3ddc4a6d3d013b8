//! Running what a command asks for: one job through its whole life, in any mode ([`lifecycle`]); the grid of a
//! sweep and its members' names ([`sweep`]); and pipeline files, whose steps are jobs chained by their
//! results ([`pipeline`]).

pub mod lifecycle;
pub mod pipeline;
pub mod sweep;
