//! Optional passwordless sudo for the user (`bootstrap --sudo`): a file in
//! `/etc/sudoers.d/`, `root:root 0440`, checked with `visudo -c -f` on the finished temp
//! file before it is put in place, so a broken file never reaches sudo.

use std::path::Path;

use anyhow::Result;

use crate::cmd::{self, Runner};
use crate::desired;
use crate::hostroot::HostRoot;
use crate::step::{Check, Progress, Step};
use crate::steps::files::{apply_file, check_file, root_owned};
use crate::username::UserName;

pub const MODE: u32 = 0o440;

#[derive(Clone)]
pub struct SudoStep<'a> {
    pub user: UserName,
    /// Runs `visudo`.
    pub run: &'a dyn Runner,
}

/// `visudo -c -f FILE`: an error with visudo's own message when the file is not valid.
pub fn visudo_check(run: &dyn Runner, file: &Path) -> Result<()> {
    let mut c = cmd::tool("visudo");
    c.arg("-c").arg("-f").arg(file);
    match run.run(&mut c) {
        Ok(_) => Ok(()),
        Err(e @ cmd::CmdError::Spawn { .. }) => Err(anyhow::Error::new(e).context(
            "visudo cannot run: install sudo (the package) to use --sudo; nothing was written",
        )),
        Err(e) => Err(anyhow::Error::new(e)
            .context("the sudoers file failed its check and was not put in place")),
    }
}

impl SudoStep<'_> {
    fn content(&self) -> Result<String> {
        desired::sudoers_content(&self.user)
    }
}

impl Step for SudoStep<'_> {
    fn id(&self) -> &'static str {
        "sudo"
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["user"]
    }

    fn check(&self, root: &HostRoot) -> Result<Check> {
        let content = self.content()?;
        let want = root_owned(&content, MODE);
        check_file(root, &desired::sudoers_path(&self.user), &want)
    }

    fn apply(&self, root: &HostRoot, _: &dyn Progress) -> Result<()> {
        let content = self.content()?;
        let want = root_owned(&content, MODE);
        apply_file(root, &desired::sudoers_path(&self.user), &want, |f| {
            visudo_check(self.run, f)
        })
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::Quiet;
    use crate::steps::testroot::{self, Snapshot};
    use crate::username::Rules;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_a_checked_sudoers_file_once() {
        if cmd::find("visudo").is_none() {
            // CI installs sudo (install-deps.sh); say so rather than pass silently.
            panic!("visudo is needed for this test: apt-get install sudo");
        }
        let (_t, root) = testroot::new();
        let world = crate::fixture::World::at(root.dir());
        let s = SudoStep {
            user: UserName::parse("stack", Rules::Debian).unwrap(),
            run: &world,
        };
        assert!(matches!(s.check(&root).unwrap(), Check::Pending(_)));
        s.apply(&root, &Quiet).unwrap();
        // visudo checked the temp file beside the final one, before the rename.
        let calls = world.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert!(
            calls[0].starts_with("visudo -c -f /etc/sudoers.d/"),
            "{calls:?}"
        );
        let p = root.path("/etc/sudoers.d/virthost-stack");
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "# Managed by virthost bootstrap.\nstack ALL=(ALL) NOPASSWD: ALL\n"
        );
        let m = fs::metadata(&p).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o440, 0, 0));
        assert!(matches!(s.check(&root).unwrap(), Check::Converged(_)));
        let before = Snapshot::take(&root);
        s.apply(&root, &Quiet).unwrap();
        assert_eq!(Snapshot::take(&root), before);
    }

    #[test]
    fn a_file_visudo_rejects_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("broken");
        fs::write(&p, "stack ALL=(ALL NOPASSWD ALL\n").unwrap();
        let err = format!("{:#}", visudo_check(&cmd::System, &p).unwrap_err());
        assert!(
            err.starts_with("the sudoers file failed its check"),
            "{err}"
        );
        assert!(err.contains("visudo -c -f"), "{err}");
    }

    #[test]
    fn a_name_sudoers_reserves_writes_nothing() {
        let (_t, root) = testroot::new();
        let s = SudoStep {
            user: UserName::parse("ALL", Rules::RedHat).unwrap(),
            run: &testroot::NO_COMMANDS,
        };
        let err = format!("{:#}", s.check(&root).unwrap_err());
        assert!(err.contains("reserved word"), "{err}");
        assert!(s.apply(&root, &Quiet).is_err());
        assert!(!root.path("/etc/sudoers.d").exists(), "no file, no temp");
    }

    #[test]
    fn a_dotted_name_gets_a_file_sudo_reads() {
        let (_t, root) = testroot::new();
        if cmd::find("visudo").is_none() {
            panic!("visudo is needed for this test: apt-get install sudo");
        }
        let s = SudoStep {
            user: UserName::parse("john.doe", Rules::RedHat).unwrap(),
            run: &cmd::System,
        };
        s.apply(&root, &Quiet).unwrap();
        let p = root.path("/etc/sudoers.d/virthost-john_2edoe");
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "# Managed by virthost bootstrap.\njohn\\.doe ALL=(ALL) NOPASSWD: ALL\n"
        );
    }

    #[test]
    fn without_visudo_the_reason_is_clear() {
        let err = format!(
            "{:#}",
            visudo_check(&testroot::NO_COMMANDS, Path::new("/x")).unwrap_err()
        );
        assert!(err.starts_with("visudo cannot run: install sudo"), "{err}");
    }
}
