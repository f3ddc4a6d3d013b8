//! The integration tests of grounds, in one binary (so the crate's dependencies are linked once): each
//! module runs the real `grounds` binary, and the entries beside it, in temporary folders with their own
//! `GROUNDS_HOME`. Tests that need the Docker engine or the services `tests/services.sh` starts (moto, a
//! registry, the SageMaker stand-in, an sshd, a TLS proxy) check for them first and say what to start:
//! `make test` starts everything.

mod common;

mod attached;
mod builtin;
mod docker_host;
mod everyday;
mod fidelity;
mod first_hour;
mod flow;
mod hardening;
mod local;
mod remote;
mod result_channels;
mod results;
mod sweep;
mod trust;
