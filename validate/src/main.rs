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
        // Tests only: the host checks of a captured host, materialized in a directory of
        // its own (the owners and modes git cannot store: root).
        let copy = std::env::temp_dir().join(format!("validate-fixture-{}", std::process::id()));
        let probe = std::fs::create_dir(&copy)
            .map_err(anyhow::Error::from)
            .and_then(|_| validate::probe::FixtureProbe::materialize(dir, &copy));
        let report = probe.map(|probe| run::run_host(&opts, &probe));
        let _ = std::fs::remove_dir_all(&copy);
        return match report {
            Ok(report) => finish(&opts, &report),
            Err(e) => {
                eprintln!("validate: fixture {}: {e:#}", dir.display());
                ExitCode::from(2)
            }
        };
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
