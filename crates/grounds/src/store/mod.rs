//! What grounds keeps on this machine: the result store ([`results`]) and the caches under
//! `$GROUNDS_HOME/cache` ([`cache`]). Who owns what a run leaves while it works (locks, job folders, the
//! clean-up of what a killed run left) is `grounds_job::owner`.

pub mod cache;
pub mod results;
