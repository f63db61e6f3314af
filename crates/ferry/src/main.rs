//! The `ferry` binary: parse the command line, hand it to the library, map errors to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = ferry::cli::Cli::parse();
    ferry::run(cli)
}
