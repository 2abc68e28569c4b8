//! `endface run` (placeholder until its owner lands it).

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<u8> {
    anyhow::bail!("`endface run` is not available in this build yet")
}
