//! What a user writes down: the task file ([`task`]), `.env` files ([`dotenv`]), and what counts as a
//! secret ([`secrets`]). Read and checked here; resolved with the flags into a run's settings in
//! [`crate::settings`].

pub mod dotenv;
pub mod secrets;
pub mod task;
