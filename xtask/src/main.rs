//! `cargo xtask <task>`: the project's own automation. One module per task.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod dist;
mod test;

#[derive(Parser)]
#[command(name = "xtask", about = "virthost's build, test and end-to-end tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the static `bootstrap` (static-pie, checked) and `validate` into target/dist/.
    Dist,
    /// Install host dependencies, start the test services, run the whole test suite.
    Test(test::Args),
    /// Time a no-op `bootstrap` beside an equivalent Ansible play (converges this machine).
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Dist => dist::run().map(|_| ()),
        Task::Test(args) => test::run(&args),
        Task::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
