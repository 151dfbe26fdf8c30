//! The files bootstrap renders, read back by the real parsers of their languages, with
//! names no valid user name can be (the renderers are the second lock and must hold alone):
//! - polkit rules, evaluated by a real JavaScript engine (node, in a context that holds only
//!   a stand-in `polkit` object, as polkitd's duktape does): the rule answers YES for
//!   exactly one action and one user, and nothing for anything else;
//! - sudoers, checked by `visudo -c` and read back by sudo's own `cvtsudoers -f json`: one
//!   user spec, naming exactly that user (never a group, netgroup, uid or `ALL`).

use std::path::Path;
use std::process::Command;

use bootstrap::desired::LIBVIRT_MANAGE_ACTION;
use bootstrap::render;
use serde_json::Value;

use virthost_testkit::HOSTILE_NAMES as HOSTILE;

const POLKIT_HARNESS: &str = r#"
const vm = require('vm'), fs = require('fs');
const [rule, cases] = process.argv.slice(1);
const rules = [];
const polkit = { Result: { YES: 'yes', NO: 'no', AUTH_ADMIN: 'auth_admin' },
                 addRule: f => rules.push(f), log: () => {} };
vm.runInNewContext(fs.readFileSync(rule, 'utf8'), { polkit });
const out = JSON.parse(fs.readFileSync(cases, 'utf8'))
  .map(([a, u]) => rules.map(r => { const v = r({ id: a }, { user: u }); return v === undefined ? null : v; }));
console.log(JSON.stringify({ rules: rules.length, out }));
"#;

#[test]
fn a_polkit_rule_grants_one_action_to_one_user_whatever_the_name() {
    let Some(node) = virthost_testkit::tool("node", "nodejs") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let other_actions = [
        "org.libvirt.unix.monitor",
        "org.freedesktop.login1.reboot",
        "",
    ];
    for name in HOSTILE {
        let text = render::polkit_rule(LIBVIRT_MANAGE_ACTION, name);
        // Pure ASCII: what ES5 (polkitd's duktape) and node read alike.
        assert!(text.is_ascii(), "{text}");
        let rule = t.path().join("rule.js");
        std::fs::write(&rule, &text).unwrap();
        let mut cases: Vec<(String, String)> = vec![];
        for subject in HOSTILE.iter().copied().chain(["root", "nobody", "x"]) {
            cases.push((LIBVIRT_MANAGE_ACTION.into(), subject.into()));
            for a in other_actions {
                cases.push((a.into(), subject.into()));
            }
        }
        cases.push((LIBVIRT_MANAGE_ACTION.into(), format!("{name}x")));
        let cases_file = t.path().join("cases.json");
        std::fs::write(&cases_file, serde_json::to_string(&cases).unwrap()).unwrap();
        let out = Command::new(&node)
            .arg("-e")
            .arg(POLKIT_HARNESS)
            .arg(&rule)
            .arg(&cases_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name:?}: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["rules"], 1, "{name:?}: {text}");
        for ((action, subject), answers) in cases.iter().zip(v["out"].as_array().unwrap()) {
            let want = if action == LIBVIRT_MANAGE_ACTION && subject == name {
                Value::from("yes")
            } else {
                Value::Null
            };
            assert_eq!(
                answers[0], want,
                "rule for {name:?}, asked {action:?} for {subject:?}\n{text}"
            );
        }
    }
}

fn cvtsudoers(cvt: &Path, file: &Path) -> Value {
    let out = Command::new(cvt)
        .args(["-f", "json"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_sudoers_file_names_one_user_whatever_the_name() {
    let (Some(visudo), Some(cvt)) = (
        virthost_testkit::tool("visudo", "sudo"),
        virthost_testkit::tool("cvtsudoers", "sudo"),
    ) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let mut rendered = 0;
    for name in HOSTILE {
        let Ok(text) = render::sudoers_nopasswd_all(name) else {
            continue;
        };
        rendered += 1;
        let file = t.path().join("sudoers");
        std::fs::write(&file, &text).unwrap();
        let ok = Command::new(&visudo)
            .arg("-c")
            .arg("-f")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{name:?}: {}\n{text}",
            String::from_utf8_lossy(&ok.stdout)
        );
        let v = cvtsudoers(&cvt, &file);
        let specs = v["User_Specs"].as_array().unwrap();
        assert_eq!(specs.len(), 1, "{name:?}: {v}");
        assert_eq!(
            specs[0]["User_List"],
            serde_json::json!([{ "username": name }]),
            "{name:?}: {text}"
        );
        assert_eq!(
            specs[0]["Cmnd_Specs"][0]["Commands"],
            serde_json::json!([{ "command": "ALL" }])
        );
    }
    // The plain names and the escapable ones were rendered; the refused ones were not.
    assert!(rendered >= 15, "{rendered}");
    for refused in ["ALL", "#0", "a\nb", "é", ""] {
        assert!(
            render::sudoers_nopasswd_all(refused).is_err(),
            "{refused:?}"
        );
    }
}
