//! The plan (`bootstrap --check` output) and the facts of every captured host under
//! `fixtures/hosts/`, snapshot-tested. A fixture host is read exactly as a real one: its
//! files through a `HostRoot`, its package manager's and virsh's captured output through
//! the parsers the real `PackageDb` and `SystemVirsh` use.

use std::path::{Path, PathBuf};

use bootstrap::facts::Facts;
use bootstrap::fixture::{World, WorldVirsh};
use bootstrap::hostroot::HostRoot;
use bootstrap::pkg::FixturePackageDb;
use bootstrap::plan::{plan, Options, Tools};
use bootstrap::report;
use bootstrap::step::{run, Mode, Quiet};

use virthost_testkit::fixtures::{self, cases, hosts};

struct Checked {
    plan: String,
    facts: serde_json::Value,
}

/// A copy of the fixture host in a temporary directory, homes owned by their users (as
/// root, as CI runs tests).
fn materialize(host: &Path) -> (tempfile::TempDir, World) {
    let t = tempfile::tempdir().unwrap();
    let w =
        World::materialize(host, t.path()).unwrap_or_else(|e| panic!("{}: {e:#}", host.display()));
    (t, w)
}

fn check(host: &Path) -> Checked {
    let (copy, world) = materialize(host);
    let root = HostRoot::at(copy.path());
    let platform = Facts::platform(&root, None).unwrap().unwrap();
    let db = FixturePackageDb::load(copy.path(), platform.family).unwrap();
    let facts = Facts::gather(&root, platform, &db).unwrap();
    let opts = Options::default();
    let virsh = WorldVirsh::new(&world, &fixtures::virsh_templates());
    // Check mode reads only: a command would fail the step.
    let tools = Tools {
        packages: &db,
        virsh: &virsh,
        run: &bootstrap::fixture::NO_COMMANDS,
    };
    let steps = plan(&facts, &opts, tools);
    let outcomes = run(&steps, &root, Mode::Check, &Quiet, |_| {});
    let p = &facts.platform;
    // Messages name real paths; under a temporary root, map them back to host paths.
    let human =
        report::human(&outcomes, Mode::Check).replace(&copy.path().display().to_string(), "");
    let plan = format!(
        "{} ({}, {}, {})\n{}",
        p.os.pretty_name, p.family, p.support, facts.cpu.model, human
    );
    Checked {
        plan,
        facts: serde_json::to_value(&facts).unwrap(),
    }
}

/// The plan and facts of each fixture in `dirs`, snapshots `{prefix}plan-<name>` and
/// `{prefix}facts-<name>`.
fn snapshot_each(dirs: Vec<PathBuf>, at_least: usize, prefix: &str) {
    assert!(dirs.len() >= at_least, "fixtures missing: {dirs:?}");
    for f in dirs {
        let name = fixtures::name(&f);
        let c = check(&f);
        insta::assert_snapshot!(format!("{prefix}plan-{name}"), c.plan);
        insta::assert_json_snapshot!(format!("{prefix}facts-{name}"), c.facts);
    }
}

#[test]
fn plan_of_every_fixture_host() {
    snapshot_each(hosts(), 10, "");
}

/// validate's cases share the layout, so bootstrap plans for them too (`case-plan-<name>`).
#[test]
fn plan_of_every_validate_case() {
    snapshot_each(cases(), 4, "case-");
}

/// Every `*-converged` host (bootstrap's own end state: RHEL 7.4 as written, Debian 13 as
/// captured from an e2e VM after bootstrap) has nothing pending.
#[test]
fn every_converged_host_has_nothing_pending() {
    let converged: Vec<PathBuf> = hosts()
        .into_iter()
        .filter(|h| h.to_string_lossy().ends_with("-converged"))
        .collect();
    assert!(converged.len() >= 2, "{converged:?}");
    for host in converged {
        let c = check(&host);
        let summary = c.plan.lines().last().unwrap();
        assert!(
            summary.ends_with(" ok, 0 pending, 0 failed, 0 skipped"),
            "{}: {}",
            host.display(),
            c.plan
        );
    }
}
