//! The `powkit` binary: parses the command line and hands it to the library.

use clap::Parser;

fn main() {
    let cli = powkit::cli::Cli::parse();
    std::process::exit(powkit::cli::run(cli));
}
