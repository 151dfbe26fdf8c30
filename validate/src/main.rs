//! `validate`: parse, run, print, exit (0 nothing FAILed, 1 something FAILed, 2 usage).

use std::process::ExitCode;

use clap::Parser;
use validate::cli::Cli;
use validate::run;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = cli.options();
    #[cfg(feature = "fixtures")]
    if let Some(dir) = &cli.fixture {
        // Tests only: the host checks of a captured host.
        let report = match validate::probe::FixtureProbe::load(dir) {
            Ok(probe) => run::run_host(&opts, &probe),
            Err(e) => {
                eprintln!("validate: fixture {}: {e}", dir.display());
                return ExitCode::from(2);
            }
        };
        return finish(&opts, &report);
    }
    let report = run::run_system(&opts);
    finish(&opts, &report)
}

/// Prints the report; the exit code follows it.
fn finish(opts: &validate::options::Options, report: &validate::report::Report) -> ExitCode {
    if let Err(e) = report.print(opts.report) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("validate: {e}");
        }
    }
    ExitCode::from(u8::from(report.failed()))
}
