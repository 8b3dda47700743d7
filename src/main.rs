//! The `powkit` binary: parses the command line and hands it to the library.

use clap::Parser;

fn main() {
    powkit::gpu::prepare_environment();
    let cli = powkit::cli::Cli::parse();
    std::process::exit(powkit::cli::run(cli));
}
