//! What the parser property tests of `bootstrap` and `validate` share
//! (`*/tests/parser_props.rs`): the watchdog every parser call runs under, the proptest
//! configuration, the fixture texts that seed the inputs, and the generators that mutate
//! them (cut, spliced, lines duplicated, dropped and swapped, tokens mixed with garbage).
//! One copy, so that both test suites mutate the same way and read the same fixtures.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::Config;

/// Text inputs are at most this long (bytes); XML at most [`XML_MAX`].
pub const TEXT_MAX: usize = 4096;
pub const XML_MAX: usize = 16 * 1024;
/// One parser call on one bounded input must end within this, or it counts as a hang.
pub const WATCHDOG: Duration = Duration::from_secs(10);

/// `cases` cases (or `PROPTEST_CASES`), no regression files written.
pub fn config(cases: u32) -> Config {
    let base = Config::default();
    Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            base.cases
        } else {
            cases
        },
        failure_persistence: None,
        max_shrink_iters: 4096,
        // A failure in a file-based property shrinks for at most this long (ms).
        max_shrink_time: 60_000,
        ..base
    }
}

/// Runs `f` on a thread of its own and returns its value: a panic in it is re-raised here,
/// and a call that does not end within [`WATCHDOG`] fails as a hang.
pub fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(v) => {
            let _ = worker.join();
            v
        }
        Err(RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker ended without an answer or a panic"),
        },
        Err(RecvTimeoutError::Timeout) => {
            panic!("no answer within {WATCHDOG:?} on a bounded input: a hang")
        }
    }
}

/// A temporary directory for a host, on tmpfs (`/dev/shm`) when `TMPDIR` is not set:
/// creating and removing a host's files there is about 30 times faster than on this
/// machine's disk, which keeps the file-based properties within their time.
pub fn scratch() -> tempfile::TempDir {
    if std::env::var_os("TMPDIR").is_none() {
        if let Ok(d) = tempfile::Builder::new()
            .prefix("parser-props-")
            .tempdir_in("/dev/shm")
        {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

pub use crate::fixtures::{cases, hosts};

/// `rel` (relative to a host's `/`) of every validate case and shared host that has it.
pub fn host_files(rel: &str) -> Vec<String> {
    let roots = crate::fixtures::all().into_iter();
    let out: Vec<String> = roots
        .filter_map(|d| std::fs::read_to_string(d.join(rel)).ok())
        .collect();
    assert!(!out.is_empty(), "no fixture has {rel}");
    out
}

/// Fixture files by path relative to `fixtures/`.
pub fn fixture_files(rels: &[&str]) -> Vec<String> {
    rels.iter()
        .map(|r| {
            let p = crate::fixtures::dir().join(r);
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

/// The first `max` bytes of `s`, cut back to a line end (or a char boundary).
pub fn head(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    match s[..end].rfind('\n') {
        Some(nl) if nl > 0 => s[..=nl].to_string(),
        _ => s[..end].to_string(),
    }
}

/// `s` cut to at most `max` bytes at a char boundary.
pub fn cap(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Bytes and short strings that break naive parsers: separators, quotes, escapes,
/// multi-byte characters (slicing at a byte offset inside them panics), controls.
#[rustfmt::skip]
pub const NASTY: &[&str] = &[
    "\n", "\n\n", "\r\n", "\r", "\t", " ", "  ", ":", "=", "==", "\"", "'", "\\", "\\\"", "#",
    "<", ">", "/>", "</", "&", "&amp;", "&lt;", ";", ",", ".", "-", "+", "~", "%", "%4", "0",
    "00", "-1", "4294967296", "18446744073709551616", "99999999999999999999", "é", "€", "😀",
    "\u{0}", "\u{7f}", "\u{feff}", "\u{fffd}", "\u{1b}[0m", "\u{1b}[", "\u{1b}", "ä:", "=é",
    "\té", "%é", "%aé", "%%", "%zz", "%+1",
];

/// A short random string: random chars, lossy random bytes, a nasty token or a number.
pub fn garbage() -> BoxedStrategy<String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
        prop::collection::vec(any::<u8>(), 0..12)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        select(NASTY).prop_map(str::to_string),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
    .boxed()
}

/// A token of the parser (`words`) or garbage.
pub fn token(words: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(words).prop_map(str::to_string),
        2 => garbage(),
    ]
    .boxed()
}

/// One edit of a seed text.
#[derive(Debug, Clone)]
enum Edit {
    /// Cut everything from here on.
    Truncate(Index),
    Insert(Index, String),
    /// Replace up to `usize` bytes from here.
    Replace(Index, usize, String),
    DupLine(Index),
    DelLine(Index),
    SwapLines(Index, Index),
}

fn edit(words: &'static [&'static str]) -> BoxedStrategy<Edit> {
    prop_oneof![
        1 => any::<Index>().prop_map(Edit::Truncate),
        4 => (any::<Index>(), token(words)).prop_map(|(i, s)| Edit::Insert(i, s)),
        3 => (any::<Index>(), 0usize..24, token(words)).prop_map(|(i, n, s)| Edit::Replace(i, n, s)),
        2 => any::<Index>().prop_map(Edit::DupLine),
        2 => any::<Index>().prop_map(Edit::DelLine),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
    .boxed()
}

/// A char boundary of `s` picked by `i` (0..=len).
fn boundary(s: &str, i: &Index) -> usize {
    let mut p = i.index(s.len() + 1);
    while !s.is_char_boundary(p) {
        p -= 1;
    }
    p
}

fn apply(s: &mut String, e: &Edit) {
    match e {
        Edit::Truncate(i) => {
            let p = boundary(s, i);
            s.truncate(p);
        }
        Edit::Insert(i, t) => {
            let p = boundary(s, i);
            s.insert_str(p, t);
        }
        Edit::Replace(i, n, t) => {
            let p = boundary(s, i);
            let mut end = (p + n).min(s.len());
            while !s.is_char_boundary(end) {
                end += 1;
            }
            s.replace_range(p..end, t);
        }
        Edit::DupLine(_) | Edit::DelLine(_) | Edit::SwapLines(..) => {
            let mut lines: Vec<String> = s.split_inclusive('\n').map(String::from).collect();
            if lines.is_empty() {
                return;
            }
            match e {
                Edit::DupLine(i) => {
                    let k = i.index(lines.len());
                    let l = lines[k].clone();
                    lines.insert(k, l);
                }
                Edit::DelLine(i) => {
                    lines.remove(i.index(lines.len()));
                }
                Edit::SwapLines(a, b) => {
                    let (a, b) = (a.index(lines.len()), b.index(lines.len()));
                    lines.swap(a, b);
                }
                _ => unreachable!(),
            }
            *s = lines.concat();
        }
    }
}

/// A seed (its first `max` bytes) with `edits` edits (few keep most of its structure, so
/// the parser's deep paths run), capped at `max` bytes.
pub fn mutated(
    seeds: Vec<String>,
    words: &'static [&'static str],
    max: usize,
    edits: std::ops::Range<usize>,
) -> BoxedStrategy<String> {
    let seeds: Vec<String> = seeds.iter().map(|s| head(s, max)).collect();
    (select(seeds), prop::collection::vec(edit(words), edits))
        .prop_map(move |(seed, edits)| {
            let mut s = seed;
            for e in &edits {
                apply(&mut s, e);
            }
            cap(s, max)
        })
        .boxed()
}

/// Lines of the seeds, lines made of the parser's tokens and separators, and garbage lines,
/// shuffled together.
pub fn line_soup(
    seeds: &[String],
    words: &'static [&'static str],
    max: usize,
) -> BoxedStrategy<String> {
    let mut real: Vec<String> = seeds
        .iter()
        .flat_map(|s| s.lines().map(String::from))
        .collect();
    real.sort();
    real.dedup();
    if real.is_empty() {
        real.push(String::new());
    }
    let built = prop::collection::vec(
        (
            token(words),
            select(&[" ", "\t", ":", "=", ": ", "\t: ", "  ", ""][..]),
        ),
        0..6,
    )
    .prop_map(|parts| {
        parts
            .into_iter()
            .map(|(t, sep)| format!("{t}{sep}"))
            .collect::<String>()
    });
    let line = prop_oneof![
        4 => select(real),
        3 => built,
        1 => garbage(),
    ];
    (
        prop::collection::vec(line, 0..48),
        select(&["\n", "\r\n", "\n\n", ""][..]),
    )
        .prop_map(move |(lines, nl)| cap(lines.join(nl), max))
        .boxed()
}

/// Any input for a parser seeded by `seeds` with tokens `words`: arbitrary text, lossy
/// arbitrary bytes, a mutated seed, or a line soup; at most `max` bytes.
pub fn input(
    seeds: Vec<String>,
    words: &'static [&'static str],
    max: usize,
) -> BoxedStrategy<String> {
    prop_oneof![
        1 => prop::collection::vec(any::<char>(), 0..512).prop_map(move |c| cap(String::from_iter(c), max)),
        1 => prop::collection::vec(any::<u8>(), 0..max)
            .prop_map(move |b| cap(String::from_utf8_lossy(&b).into_owned(), max)),
        2 => mutated(seeds.clone(), words, max, 0..3),
        2 => mutated(seeds.clone(), words, max, 0..12),
        2 => line_soup(&seeds, words, max),
    ]
    .boxed()
}

/// Raw file content: valid text from [`input`] or arbitrary bytes (invalid UTF-8 too).
pub fn file_bytes(seeds: Vec<String>, words: &'static [&'static str]) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => input(seeds, words, TEXT_MAX).prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
    .boxed()
}

/// A host path and its content (`None`: absent).
pub type HostFile = (&'static str, Option<Vec<u8>>);

pub fn no_newline(what: &str, s: &str) -> Result<(), TestCaseError> {
    prop_assert!(!s.contains('\n'), "{what} holds a newline: {s:?}");
    Ok(())
}

/// Copies the tree `from` to `to` (created), symlinks as links.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&src, &dst);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// The regular files under `dir`, relative to it, but the iPXE ROMs (empty stand-ins: there
/// is nothing in them to mutate).
fn files_of(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir.join(rel)).unwrap() {
        let e = e.unwrap();
        let r = rel.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            files_of(dir, &r, out);
        } else if ft.is_file() && r.extension().is_none_or(|x| x != "rom") {
            out.push(r);
        }
    }
}

/// A fixture (a validate case or a shared host: one layout), one of its files, and that
/// file's new content (`None`: removed).
#[derive(Debug, Clone)]
pub struct MutatedFixture {
    pub dir: PathBuf,
    pub file: PathBuf,
    pub content: Option<Vec<u8>>,
}

impl MutatedFixture {
    /// A copy of the fixture in a [`scratch`] directory, with the mutation made.
    pub fn lay_down(&self) -> tempfile::TempDir {
        let t = scratch();
        copy_tree(&self.dir, t.path());
        let target = t.path().join(&self.file);
        match &self.content {
            Some(c) => std::fs::write(&target, c).unwrap(),
            None => std::fs::remove_file(&target).unwrap(),
        }
        t
    }
}

/// One file of one of the fixtures `dirs` mutated with `words`: removed, emptied, edited
/// (up to 12 edits, at most [`TEXT_MAX`] bytes), or edited and made invalid UTF-8.
pub fn mutated_fixture(
    dirs: Vec<PathBuf>,
    words: &'static [&'static str],
) -> BoxedStrategy<MutatedFixture> {
    let mut all: Vec<(PathBuf, PathBuf, String)> = Vec::new();
    for d in dirs {
        let mut files = Vec::new();
        files_of(&d, Path::new(""), &mut files);
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(d.join(&f)).unwrap_or_default();
            all.push((d.clone(), f, text));
        }
    }
    (
        select(all),
        prop::collection::vec(edit(words), 0..12),
        0u8..16,
    )
        .prop_map(|((dir, file, text), edits, how)| {
            let content = match how {
                0 => None,
                1 => Some(Vec::new()),
                _ => {
                    let mut s = head(&text, TEXT_MAX);
                    for e in &edits {
                        apply(&mut s, e);
                    }
                    let mut b = cap(s, TEXT_MAX).into_bytes();
                    if how == 2 {
                        // An invalid UTF-8 byte: read_to_string fails on it.
                        b.push(0xff);
                    }
                    Some(b)
                }
            };
            MutatedFixture { dir, file, content }
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    /// `n` values of `s`.
    fn sample<T: std::fmt::Debug>(s: &BoxedStrategy<T>, n: usize) -> Vec<T> {
        let mut runner = TestRunner::deterministic();
        (0..n)
            .map(|_| s.new_tree(&mut runner).unwrap().current())
            .collect()
    }

    /// The generators change what they are given (a generator that returned its seeds
    /// would leave every property above holding of the fixtures alone).
    #[test]
    fn mutations_change_the_seeds() {
        let seed = "ID=debian\nVERSION_ID=\"12\"\nNAME=\"Debian GNU/Linux\"\n".to_string();
        let edited = sample(
            &mutated(vec![seed.clone()], &["ID", "="], TEXT_MAX, 1..4),
            200,
        );
        let changed = edited.iter().filter(|s| **s != seed).count();
        assert!(changed >= 150, "{changed} of 200 edited seeds differ");

        let fixtures = sample(&mutated_fixture(hosts(), &["ID", "="]), 200);
        let changed = fixtures
            .iter()
            .filter(|m| match &m.content {
                None => true,
                Some(c) => std::fs::read(m.dir.join(&m.file)).ok().as_ref() != Some(c),
            })
            .count();
        assert!(changed >= 150, "{changed} of 200 mutated fixtures differ");
    }
}
