//! `endface locate` (placeholder until its owner lands it).

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<u8> {
    anyhow::bail!("`endface locate` is not available in this build yet")
}
