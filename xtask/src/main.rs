//! `cargo xtask <task>`: the project's automation. A thin dispatcher: parse, match, call one
//! function. Each task lives in its own module.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cmd;
mod e2e;

#[derive(Parser)]
#[command(name = "xtask", about = "virthost project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the release binaries into target/dist/ (static bootstrap, validate)
    Dist,
    /// Run the test suite against real systems (installs deps, starts libvirtd)
    Test,
    /// Boot a VM that plays the hypervisor and drive bootstrap + validate in it over SSH
    E2e(e2e::Args),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match cli.task {
        // TODO(lead): dist.rs and test.rs replace these stubs.
        Task::Dist => e2e::build::dist().map(|d| {
            eprintln!("dist: {} {}", d.bootstrap.display(), d.validate.display());
        }),
        Task::Test => Err(anyhow::anyhow!("`cargo xtask test` is not implemented yet")),
        Task::E2e(args) => e2e::run(args),
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}
