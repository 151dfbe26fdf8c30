//! Everything the host checks learn about a host goes through a [`Probe`]: file contents
//! through its [`HostRoot`], and the few things that are not file contents (command output,
//! file ownership and modes, free space, the KVM ioctls) through its methods. [`SystemProbe`]
//! asks the running system; `FixtureProbe` (tests only) answers from a captured host in the
//! one fixture layout (`fixtures/hosts/<name>/`, `fixtures/validate/<case>/`: the directory
//! stands for `/`, with `pkg/` and an optional `probe.json` for the rest).

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};
use virthost_model::cmd::{CmdError, CommandExt};
use virthost_model::hostroot::HostRoot;
use virthost_model::os::Family;
use virthost_model::pkg::{PackageDb, SystemPackageDb};

/// What a command printed, and whether it exited 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutput {
    #[serde(default)]
    pub success: bool,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
}

/// Owner, group and mode of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`0o660`), without the file type. Fixtures write it as an octal
    /// string (`"0660"`).
    #[serde(deserialize_with = "octal")]
    pub mode: u32,
    #[serde(default)]
    pub kind: FileKind,
}

impl FileMeta {
    /// The owner, group and mode as the model's device node.
    pub fn node(&self) -> virthost_model::facts::DevNode {
        virthost_model::facts::DevNode {
            uid: self.uid,
            gid: self.gid,
            mode: self.mode,
        }
    }
}

fn octal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let s = String::deserialize(d)?;
    u32::from_str_radix(&s, 8)
        .map_err(|_| serde::de::Error::custom(format!("mode '{s}' is not octal")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    #[default]
    File,
    Dir,
    Char,
    Other,
}

/// Space on the filesystem holding a path, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Space {
    /// Free for an unprivileged user (`f_bavail`).
    pub available: u64,
    pub total: u64,
}

/// What `/dev/kvm` said when asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum KvmAnswer {
    /// `open("/dev/kvm")` failed (the message says why).
    OpenFailed { error: String },
    /// `KVM_GET_API_VERSION` failed or answered `api_version`; `create_vm` is the error of
    /// `KVM_CREATE_VM`, `None` when it succeeded (the VM fd was closed again).
    Answered {
        api_version: Option<i32>,
        create_vm_error: Option<String>,
    },
}

pub trait Probe {
    /// The host's `/`.
    fn root(&self) -> &HostRoot;
    /// Runs `argv` (with `LC_ALL=C`) through the shared `virthost_model::cmd`: its stdout,
    /// or the error with the command line, the exit status and stderr (or why it could not
    /// start).
    fn command(&self, argv: &[&str]) -> Result<String, CmdError>;
    /// Owner, group and mode of a host path (following symlinks).
    fn meta(&self, host_path: &str) -> io::Result<FileMeta>;
    /// Free space of the filesystem holding a host path.
    fn space(&self, host_path: &str) -> io::Result<Space>;
    /// Opens `/dev/kvm` and asks `KVM_GET_API_VERSION` and `KVM_CREATE_VM`.
    fn kvm(&self) -> KvmAnswer;
    /// The host's package database (the shared `virthost_model::pkg` queries).
    fn package_db(&self, family: Family) -> anyhow::Result<Box<dyn PackageDb>>;
}

/// The running system (or a root directory for files, with the system answering the rest).
pub struct SystemProbe {
    root: HostRoot,
}

impl SystemProbe {
    pub fn new(root: HostRoot) -> Self {
        SystemProbe { root }
    }
}

impl Probe for SystemProbe {
    fn root(&self) -> &HostRoot {
        &self.root
    }

    fn command(&self, argv: &[&str]) -> Result<String, CmdError> {
        let (prog, args) = argv.split_first().expect("a command has a program");
        Command::new(prog)
            .args(args)
            .env("LC_ALL", "C")
            .run_get_string()
    }

    fn meta(&self, host_path: &str) -> io::Result<FileMeta> {
        let m = std::fs::metadata(self.root.path(host_path))?;
        let ft = m.file_type();
        Ok(FileMeta {
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode() & 0o7777,
            kind: if ft.is_dir() {
                FileKind::Dir
            } else if ft.is_char_device() {
                FileKind::Char
            } else if ft.is_file() {
                FileKind::File
            } else {
                FileKind::Other
            },
        })
    }

    fn space(&self, host_path: &str) -> io::Result<Space> {
        let s = nix::sys::statvfs::statvfs(&self.root.path(host_path)).map_err(io::Error::from)?;
        let frag = s.fragment_size() as u64;
        Ok(Space {
            available: s.blocks_available() as u64 * frag,
            total: s.blocks() as u64 * frag,
        })
    }

    fn kvm(&self) -> KvmAnswer {
        kvm_ioctls(&self.root.path("/dev/kvm"))
    }

    fn package_db(&self, family: Family) -> anyhow::Result<Box<dyn PackageDb>> {
        // Never refreshes package lists: validate only reads.
        Ok(Box::new(SystemPackageDb::new(
            family,
            self.root.clone(),
            false,
        )))
    }
}

/// `_IO(KVMIO, 0x00)` and `_IO(KVMIO, 0x01)` from `<linux/kvm.h>`.
const KVM_GET_API_VERSION: u64 = 0xAE00;
const KVM_CREATE_VM: u64 = 0xAE01;

fn kvm_ioctls(path: &Path) -> KvmAnswer {
    use std::os::fd::AsRawFd;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => {
            return KvmAnswer::OpenFailed {
                error: e.to_string(),
            }
        }
    };
    let fd = file.as_raw_fd();
    // SAFETY: both ioctls take no pointer argument; `fd` is open for the whole block and
    // the VM fd KVM_CREATE_VM returns is closed right away.
    unsafe {
        let api = nix::libc::ioctl(fd, KVM_GET_API_VERSION as _, 0);
        let api_version = (api >= 0).then_some(api);
        let vm = nix::libc::ioctl(fd, KVM_CREATE_VM as _, 0);
        let create_vm_error = if vm >= 0 {
            nix::libc::close(vm);
            None
        } else {
            Some(io::Error::last_os_error().to_string())
        };
        KvmAnswer::Answered {
            api_version,
            create_vm_error,
        }
    }
}

/// The captured hosts of the tests (the `fixtures` feature, which only dev-dependencies turn
/// on: the shipped binary has no `--fixture` and reads only the running system).
#[cfg(any(test, feature = "fixtures"))]
mod fixture {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use virthost_model::pkg::FixturePackageDb;

    /// The non-file answers of a captured host (`probe.json`).
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FixtureAnswers {
        /// Where the fixture comes from (ignored).
        #[serde(default, rename = "_comment")]
        pub comment: String,
        /// Keyed by the argv joined with single spaces; a missing key = program not installed.
        #[serde(default)]
        pub commands: BTreeMap<String, CommandOutput>,
        /// Keyed by host path; a missing key = no such file.
        #[serde(default)]
        pub meta: BTreeMap<String, FileMeta>,
        /// Keyed by host path; the longest listed prefix of a path answers for it.
        #[serde(default)]
        pub space: BTreeMap<String, Space>,
        pub kvm: Option<KvmAnswer>,
    }

    /// A captured host in the one fixture layout (fixtures/README.md): `dir` stands for `/`,
    /// `pkg/` beside its files holds the package manager's answers (read by
    /// `virthost_model::pkg::FixturePackageDb`), and the optional `probe.json` what no file
    /// holds: command output, owners and modes, free space, the KVM ioctls.
    pub struct FixtureProbe {
        root: HostRoot,
        answers: FixtureAnswers,
        /// Where `pkg/installed.txt` is.
        pkg_dir: PathBuf,
    }

    impl FixtureProbe {
        /// The host at `dir`. A `probe.json` that does not parse is an error; without one,
        /// free space, the KVM ioctls and command output say "not captured". Owners and
        /// modes not in `probe.json` are the files' own ([`FixtureProbe::file_meta`]): load a
        /// materialized copy (`virthost_model::fixture::World::materialize`).
        pub fn load(dir: impl Into<PathBuf>) -> io::Result<Self> {
            let dir = dir.into();
            let answers = match std::fs::read_to_string(dir.join("probe.json")) {
                Ok(text) => serde_json::from_str(&text).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("probe.json: {e}"))
                })?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => FixtureAnswers::default(),
                Err(e) => return Err(e),
            };
            Ok(FixtureProbe {
                root: HostRoot::at(&dir),
                answers,
                pkg_dir: dir,
            })
        }

        /// Owner and mode of a path `probe.json` does not give: a device node's captured
        /// stat line (`dev/kvm` holds `stat -c '%u %g %a'`: git stores no device nodes),
        /// else the file's own metadata: a fixture host is read once materialized
        /// (`virthost_model::fixture::World::materialize` puts on its files the owners and
        /// modes git cannot store).
        fn file_meta(&self, host_path: &str) -> io::Result<FileMeta> {
            if host_path.starts_with("/dev/") {
                return match virthost_model::facts::DevNode::read(&self.root, host_path) {
                    Ok(Some(d)) => Ok(FileMeta {
                        uid: d.uid,
                        gid: d.gid,
                        mode: d.mode,
                        kind: FileKind::Char,
                    }),
                    Ok(None) => Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        host_path.to_string(),
                    )),
                    Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, format!("{e:#}"))),
                };
            }
            SystemProbe::new(self.root.clone()).meta(host_path)
        }
    }

    impl FixtureProbe {
        /// The fixture host `host` materialized in the empty directory `into`
        /// (`virthost_model::fixture::World::materialize`: the owners and modes git cannot
        /// store put on its files; root privileges), then loaded.
        pub fn materialize(host: &Path, into: &Path) -> anyhow::Result<Self> {
            virthost_model::fixture::World::materialize(host, into).map_err(|e| {
                e.context(format!(
                    "materializing the fixture host {} (run the tests as root)",
                    host.display()
                ))
            })?;
            Ok(Self::load(into)?)
        }

        /// A host whose files are under `root` (`pkg/installed.txt` too) and whose other
        /// answers are `answers`.
        pub fn new(root: HostRoot, answers: FixtureAnswers) -> Self {
            let pkg_dir = root.dir().to_path_buf();
            FixtureProbe {
                root,
                answers,
                pkg_dir,
            }
        }
    }

    impl Probe for FixtureProbe {
        fn root(&self) -> &HostRoot {
            &self.root
        }

        fn command(&self, argv: &[&str]) -> Result<String, CmdError> {
            let cmdline = argv.join(" ");
            match self.answers.commands.get(&cmdline) {
                Some(o) if o.success => Ok(o.stdout.clone()),
                Some(o) => Err(CmdError::Failed {
                    cmdline,
                    status: std::os::unix::process::ExitStatusExt::from_raw(1 << 8),
                    stderr: o.stderr.clone(),
                }),
                None => Err(CmdError::Spawn {
                    cmdline,
                    error: io::Error::new(io::ErrorKind::NotFound, "not captured in this fixture"),
                }),
            }
        }

        fn meta(&self, host_path: &str) -> io::Result<FileMeta> {
            match self.answers.meta.get(host_path) {
                Some(m) => Ok(*m),
                None => self.file_meta(host_path),
            }
        }

        fn space(&self, host_path: &str) -> io::Result<Space> {
            self.answers
                .space
                .iter()
                .filter(|(p, _)| Path::new(host_path).starts_with(p))
                .max_by_key(|(p, _)| p.len())
                .map(|(_, s)| *s)
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "not captured in this fixture")
                })
        }

        fn package_db(&self, family: Family) -> anyhow::Result<Box<dyn PackageDb>> {
            Ok(Box::new(FixturePackageDb::load(&self.pkg_dir, family)?))
        }

        fn kvm(&self) -> KvmAnswer {
            self.answers
                .kvm
                .clone()
                .unwrap_or_else(|| KvmAnswer::OpenFailed {
                    error: if self.meta("/dev/kvm").is_ok() {
                        "not captured in this fixture".into()
                    } else {
                        "No such file or directory (os error 2)".into()
                    },
                })
        }
    }
}
#[cfg(any(test, feature = "fixtures"))]
pub use fixture::{FixtureAnswers, FixtureProbe};

/// Builds throwaway hosts for unit tests: files in a temporary root, answers in memory.
#[cfg(test)]
pub mod testing {
    use super::*;

    pub struct TestHost {
        pub dir: tempfile::TempDir,
        pub answers: FixtureAnswers,
    }

    impl Default for TestHost {
        fn default() -> Self {
            Self::new()
        }
    }

    impl TestHost {
        pub fn new() -> Self {
            TestHost {
                dir: tempfile::tempdir().unwrap(),
                answers: FixtureAnswers::default(),
            }
        }

        pub fn file(self, host_path: &str, content: &str) -> Self {
            let p = HostRoot::at(self.dir.path()).path(host_path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
            self
        }

        pub fn dir(self, host_path: &str) -> Self {
            std::fs::create_dir_all(HostRoot::at(self.dir.path()).path(host_path)).unwrap();
            self
        }

        pub fn meta(
            mut self,
            host_path: &str,
            uid: u32,
            gid: u32,
            mode: u32,
            kind: FileKind,
        ) -> Self {
            self.answers.meta.insert(
                host_path.into(),
                FileMeta {
                    uid,
                    gid,
                    mode,
                    kind,
                },
            );
            self
        }

        pub fn kvm(mut self, answer: KvmAnswer) -> Self {
            self.answers.kvm = Some(answer);
            self
        }

        pub fn command(mut self, argv: &str, stdout: &str, success: bool) -> Self {
            self.answers.commands.insert(
                argv.into(),
                CommandOutput {
                    success,
                    stdout: stdout.into(),
                    stderr: String::new(),
                },
            );
            self
        }

        pub fn space(mut self, host_path: &str, available: u64, total: u64) -> Self {
            self.answers
                .space
                .insert(host_path.into(), Space { available, total });
            self
        }

        pub fn probe(&self) -> FixtureProbe {
            FixtureProbe::new(HostRoot::at(self.dir.path()), self.answers.clone())
        }
    }
}
