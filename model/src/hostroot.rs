//! Every file `bootstrap` and `validate` read or write goes through a [`HostRoot`]: `/` on a
//! real host, a temporary directory (or a captured fixture host) in tests.

use std::io;
use std::path::{Path, PathBuf};

/// A directory that stands for `/` of the host being read or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot {
    root: PathBuf,
}

impl HostRoot {
    /// The running system.
    pub fn system() -> Self {
        Self::at("/")
    }

    /// A host laid out under `root` (a fixture or a test's temporary directory).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Whether this is the running system rather than a directory standing in for it.
    pub fn is_system(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The directory standing for `/`.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Maps an absolute host path (`/etc/os-release`) into this root.
    pub fn path(&self, host_path: impl AsRef<Path>) -> PathBuf {
        let p = host_path.as_ref();
        let rel = p.strip_prefix("/").unwrap_or(p);
        self.root.join(rel)
    }

    pub fn read_to_string(&self, host_path: impl AsRef<Path>) -> io::Result<String> {
        let p = self.path(host_path);
        std::fs::read_to_string(&p)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
    }

    /// Reads a file, `None` when it does not exist (other errors are errors).
    pub fn read_optional(&self, host_path: impl AsRef<Path>) -> io::Result<Option<String>> {
        match std::fs::read_to_string(self.path(host_path.as_ref())) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("{}: {e}", self.path(host_path).display()),
            )),
        }
    }

    /// The entries of a host directory as (file name, host path), sorted; a missing
    /// directory is empty.
    pub fn list_dir(&self, host_path: &str) -> io::Result<Vec<(String, String)>> {
        let entries = match std::fs::read_dir(self.path(host_path)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e),
        };
        let mut out: Vec<(String, String)> = entries
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let path = format!("{}/{name}", host_path.trim_end_matches('/'));
                (name, path)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    pub fn exists(&self, host_path: impl AsRef<Path>) -> bool {
        self.path(host_path).exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_absolute_paths_under_the_root() {
        let r = HostRoot::at("/tmp/x");
        assert_eq!(
            r.path("/etc/os-release"),
            PathBuf::from("/tmp/x/etc/os-release")
        );
        assert_eq!(
            HostRoot::system().path("/etc/passwd"),
            PathBuf::from("/etc/passwd")
        );
        assert!(HostRoot::system().is_system());
        assert!(!r.is_system());
    }
}
