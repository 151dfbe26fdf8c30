//! `validate`: parse, run, print, exit (0 nothing FAILed, 1 something FAILed, 2 usage).

use std::process::ExitCode;

use clap::Parser;
use validate::cli::Cli;
use validate::probe::FixtureProbe;
use validate::run;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = cli.options();
    let report = match &cli.fixture {
        Some(dir) => match FixtureProbe::load(dir) {
            Ok(probe) => run::run_host(&opts, &probe),
            Err(e) => {
                eprintln!("validate: fixture {}: {e}", dir.display());
                return ExitCode::from(2);
            }
        },
        None => run::run_system(&opts),
    };
    if let Err(e) = report.print(opts.report) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("validate: {e}");
        }
    }
    ExitCode::from(u8::from(report.failed()))
}
