//! The engine flags the hashing commands share, as flattened clap groups: [`EngineArgs`]
//! (`--backend`, `--adapter`) in `bench`, `mine` and `validate`, and [`SearchEngineArgs`]
//! (`--cpu-impl`, `--gpu-allow-software`) in the nonce-search commands, `bench` and `mine`.
//!
//! What stays in the commands, and why:
//! - `--threads`: `bench` takes a comma-separated list (one row per count), the others one count;
//!   and what the threads do differs (search workers, header hashers, the node's miner).
//! - `node`'s `--backend` and `--threads`: no defaults on the command line, because a flag overrides
//!   `powkit.conf`, which overrides the defaults ([`crate::node::config::Settings`]); its `--backend`
//!   refuses `auto` (the miner hashes on the CPU unless told otherwise), and it has no `--adapter`.
//! - The help of `--backend` (and `bench`'s `--cpu-impl`) where a command gives it a meaning of its
//!   own: the command replaces the help with `#[command(mut_arg(...))]`, the value type stays.

use clap::Args;

use super::Backend;

/// `--backend` and `--adapter`: where hashing runs, and on which GPU.
#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// Where to hash (auto: CPU and a hardware GPU together when there is one, else the CPU).
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: Backend,
    /// GPU adapter index from `powkit gpu list` (default: a discrete GPU first).
    #[arg(long)]
    pub adapter: Option<usize>,
}

/// `--cpu-impl` and `--gpu-allow-software`: how a nonce search uses the CPU, and whether a software
/// GPU adapter may join it. Not in `validate`: header hashing always uses the fastest CPU lanes, and
/// takes a software adapter whenever `--backend` names the GPU.
#[derive(Args, Debug, Clone)]
pub struct SearchEngineArgs {
    /// CPU implementation: auto (the fastest this CPU has), scalar, shani, avx2, avx512.
    #[arg(long, default_value = "auto")]
    pub cpu_impl: String,
    /// With --backend all|auto, use a software GPU adapter (lavapipe) too, though it shares the CPU.
    #[arg(long)]
    pub gpu_allow_software: bool,
}
