//! Subcommands of the `endface` binary. Each file owns one subcommand: its clap `Args` and a
//! `run(Args) -> anyhow::Result<u8>` returning the process exit code on success paths
//! (0, or e.g. `exit::DRIFT_DETECTED`). Errors carry their code through `endface::error::coded`.

pub mod bundle;
pub mod drift;
pub mod drift_reference;
pub mod eval;
pub mod inspect;
pub mod journal;
pub mod locate;
pub mod run;
pub mod synth;
