//! `powkit gpu list`: the adapters wgpu can see.

use clap::{Args, Subcommand};

use super::CliError;
use crate::gpu::list_adapters;

/// `powkit gpu` subcommands.
#[derive(Subcommand, Debug)]
pub enum GpuCommand {
    /// List GPU adapters: index (for --adapter), name, backend, type, driver.
    List(ListArgs),
}

/// Flags of `powkit gpu list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `gpu` subcommand: exit 0, or 1 when there is no adapter.
pub fn main(c: &GpuCommand) -> Result<i32, CliError> {
    match c {
        GpuCommand::List(a) => {
            let all = list_adapters();
            if a.json {
                println!("{}", serde_json::to_string_pretty(&all).expect("serializable"));
            } else if all.is_empty() {
                println!("no GPU adapters found (on Linux without a GPU, install mesa-vulkan-drivers)");
            } else {
                println!("{:<5} {:<40} {:<8} {:<14} driver", "index", "name", "backend", "type");
                for ad in &all {
                    println!(
                        "{:<5} {:<40} {:<8} {:<14} {} {}",
                        ad.index, ad.name, ad.backend, ad.device_type, ad.driver, ad.driver_info
                    );
                }
            }
            Ok(if all.is_empty() { 1 } else { 0 })
        }
    }
}
