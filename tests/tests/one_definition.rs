//! One definition of "ready", over every fixture host: bootstrap's plan is applied in a
//! fixture world (`virthost_model::fixture::World`: the host copied, its package manager
//! installing the packages' payloads, virsh keeping its pools, the other commands carried
//! out inside the copy), then validate reads the world. Every check validate says a
//! bootstrap step owns must agree with that step: PASS where the step converged (`ok` or
//! `changed`), not PASS where it failed or was skipped. No list of ids or hosts: a new
//! requirement, check or fixture host is covered by construction. Where each host ends (which
//! steps converge, validate's counts) is snapshotted, so a step that stops converging shows
//! even where validate agrees with it.
//!
//! Needs root (the world's `useradd --root` chroots; homes are chowned), through the one
//! gate: `virthost_testkit::root()`.

use bootstrap::facts::Facts;
use bootstrap::fixture::{World, WorldPackages, WorldVirsh};
use bootstrap::os::Platform;
use bootstrap::plan::{plan, Options, Tools};
use bootstrap::sshkey::PublicKey;
use bootstrap::step::{run, Mode, Outcome, Quiet, Status};
use validate::check::Status as Verdict;
use validate::probe::FixtureProbe;
use virthost_testkit::{fixtures, ED25519, ED25519_2};

/// A converge of the world, as `bootstrap` runs one: facts read, plan made, applied.
fn converge(world: &World, platform: &Platform, opts: &Options) -> Vec<Outcome> {
    let db = WorldPackages::load(world, platform).unwrap();
    let virsh = WorldVirsh::new(world, &fixtures::virsh_templates());
    let facts = Facts::gather(world.root(), platform.clone(), &db).unwrap();
    let tools = Tools {
        packages: &db,
        virsh: &virsh,
        run: world,
    };
    let steps = plan(&facts, opts, tools);
    run(&steps, world.root(), Mode::Apply, &Quiet, |_| {})
}

fn show(outcomes: &[Outcome]) -> String {
    outcomes
        .iter()
        .map(|o| format!("  {} {:?}: {} {:?}", o.id, o.status, o.detail, o.changes))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn on_every_fixture_host_validate_agrees_with_what_bootstrap_converged() {
    if virthost_testkit::root().is_none() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (root_key, stack_key) = (keys.path().join("root.pub"), keys.path().join("stack.pub"));
    std::fs::write(&root_key, format!("{ED25519}\n")).unwrap();
    std::fs::write(&stack_key, format!("{ED25519_2}\n")).unwrap();
    let opts = Options {
        root_keys: vec![PublicKey::parse(ED25519).unwrap()],
        stack_keys: vec![PublicKey::parse(ED25519_2).unwrap()],
        ..Options::default()
    };
    let vopts = validate::options::Options {
        root_keys: vec![root_key],
        stack_keys: vec![stack_key],
        ..validate::options::Options::default()
    };
    let hosts = fixtures::all();
    assert!(hosts.len() >= 10, "{hosts:?}");
    let mut problems = vec![];
    for host in hosts {
        let name = fixtures::name(&host);
        let t = tempfile::tempdir().unwrap();
        let world = World::materialize(&host, t.path()).unwrap();
        let platform = Facts::platform(world.root(), None).unwrap().unwrap();
        let first = converge(&world, &platform, &opts);
        // A second run finds everything done: nothing changes, nothing new fails.
        let second = converge(&world, &platform, &opts);
        assert_eq!(
            first.iter().map(|o| &o.id).collect::<Vec<_>>(),
            second.iter().map(|o| &o.id).collect::<Vec<_>>(),
            "{name}: the two runs planned different steps"
        );
        for (a, b) in first.iter().zip(&second) {
            let worse = b.status == Status::Failed && a.status != Status::Failed;
            if b.status == Status::Changed || worse {
                problems.push(format!(
                    "{name}: step {} is {:?} on the second run: {}",
                    b.id, b.status, b.detail
                ));
            }
        }
        let report = validate::run::run_host(&vopts, &FixtureProbe::load(t.path()).unwrap());
        let owned: Vec<_> = report
            .checks
            .iter()
            .filter(|c| c.bootstrap_step.is_some())
            .collect();
        for c in &owned {
            let step = c.bootstrap_step.as_deref().unwrap();
            let Some(o) = second.iter().find(|o| o.id == step) else {
                problems.push(format!(
                    "{name}: {} names bootstrap step `{step}`, which the plan does not have",
                    c.id
                ));
                continue;
            };
            // Converged: every check the step owns PASSes.
            if matches!(o.status, Status::Ok | Status::Changed) && c.status != Verdict::Pass {
                problems.push(format!(
                    "{name}: bootstrap's `{step}` is {:?} ({}) but validate's {} is {:?}: {}",
                    o.status, o.detail, c.id, c.status, c.detail
                ));
            }
        }
        // Not converged (failed, or skipped with a warning): validate sees it, in at least
        // one check the step owns.
        for o in &second {
            let mine: Vec<_> = owned
                .iter()
                .filter(|c| c.bootstrap_step.as_deref() == Some(o.id.as_str()))
                .collect();
            let not_converged = o.status == Status::Failed
                || (o.status == Status::Skipped && o.detail.starts_with("warning:"));
            if not_converged && !mine.is_empty() && mine.iter().all(|c| c.status == Verdict::Pass) {
                problems.push(format!(
                    "{name}: bootstrap's `{}` is {:?} ({}) but validate passes all its checks ({})",
                    o.id,
                    o.status,
                    o.detail,
                    mine.iter()
                        .map(|c| c.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        let owned = owned.len();
        // Where each host ends: which steps converge and what validate says of it. Agreement
        // alone would hold of a step that fails on every host (validate agrees it is not
        // met); the snapshot shows it (`converged-<host>`).
        let statuses: Vec<String> = second
            .iter()
            .map(|o| format!("{:<9} {:?}", o.id, o.status))
            .collect();
        insta::assert_snapshot!(
            format!("converged-{name}"),
            format!(
                "{}\nvalidate: {} PASS, {} WARN, {} FAIL, {owned} owned by bootstrap",
                statuses.join("\n"),
                report.summary.pass,
                report.summary.warn,
                report.summary.fail
            )
        );
        if owned < 12 {
            problems.push(format!("{name}: only {owned} checks name a bootstrap step"));
        }
        if !problems.is_empty() {
            eprintln!(
                "{name}, first run:\n{}\nsecond run:\n{}",
                show(&first),
                show(&second)
            );
            eprintln!("calls: {:#?}", world.calls());
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
