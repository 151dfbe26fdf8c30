//! OpenSSH public keys: `[options] type base64 [comment]`, as in `id_rsa.pub` and
//! `authorized_keys`. A key is accepted only when its type is known and its base64 blob
//! decodes to a key of that same type. Private keys are refused, and no error ever echoes
//! key material (a private key must not end up in a log).

use std::fmt;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Key types `authorized_keys` accepts.
pub const KEY_TYPES: &[&str] = &[
    "ssh-rsa",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ssh-ed25519@openssh.com",
    "ssh-dss",
];

/// A parsed public key. Two keys are the same key when type and blob match
/// ([`PublicKey::same_key`]); options and comment do not matter.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// `authorized_keys` options (`from="10.0.0.1",no-pty`), as written.
    pub options: Option<String>,
    pub kind: String,
    /// The decoded key blob.
    pub blob: Vec<u8>,
    pub comment: Option<String>,
    /// The line as given (trimmed), written verbatim to `authorized_keys`.
    pub line: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.kind, self.fingerprint_hint())
    }
}

impl PublicKey {
    /// Parses one key line. Errors never contain the line.
    pub fn parse(line: &str) -> Result<PublicKey> {
        let line = line.trim();
        let (options, rest) = if KEY_TYPES.contains(&first_word(line)) {
            (None, line)
        } else {
            let (opts, rest) = split_options(line)?;
            (Some(opts.to_string()), rest.trim_start())
        };
        let mut parts = rest.splitn(3, [' ', '\t']);
        let kind = parts.next().unwrap_or("");
        if !KEY_TYPES.contains(&kind) {
            // `ssh-foo AAAA...` was taken as options followed by `AAAA...`: name `ssh-foo`.
            let named = [kind, first_word(line)]
                .into_iter()
                .find(|w| looks_like_type(w));
            if let Some(t) = named {
                bail!("unknown key type '{t}' (known: {})", KEY_TYPES.join(", "));
            }
            bail!("not an OpenSSH public key (expected 'type base64 [comment]')");
        }
        let b64 = parts.next().unwrap_or("").trim();
        if b64.is_empty() {
            bail!("{kind} key without key data");
        }
        let blob = base64_decode(b64).context("key data is not valid base64")?;
        match blob_type(&blob) {
            Some(t) if t == kind.as_bytes() => {}
            Some(t) if looks_like_type(&String::from_utf8_lossy(t)) => bail!(
                "key data is a '{}' key but the line says '{kind}'",
                String::from_utf8_lossy(t)
            ),
            _ => bail!("key data is not a {kind} key"),
        }
        let comment = parts
            .next()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from);
        Ok(PublicKey {
            options,
            kind: kind.to_string(),
            blob,
            comment,
            line: line.to_string(),
        })
    }

    /// Same type and blob.
    pub fn same_key(&self, other: &PublicKey) -> bool {
        self.kind == other.kind && self.blob == other.blob
    }

    /// A short, non-secret description for messages: type, comment, or the blob's tail.
    pub fn fingerprint_hint(&self) -> String {
        match &self.comment {
            Some(c) => c.clone(),
            None => format!("({} bytes)", self.blob.len()),
        }
    }

    /// Type and comment, for change lines (`ssh-ed25519 alice@laptop`).
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind, self.fingerprint_hint())
    }
}

fn first_word(s: &str) -> &str {
    s.split([' ', '\t']).next().unwrap_or("")
}

/// A short lowercase token that could be a key type name (safe to echo).
fn looks_like_type(s: &str) -> bool {
    (1..=48).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-@._".contains(&b))
        && s.bytes().any(|b| b == b'-')
}

/// Splits `options rest` where options end at the first whitespace outside double quotes.
fn split_options(line: &str) -> Result<(&str, &str)> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_quotes = !in_quotes;
        } else if (c == ' ' || c == '\t') && !in_quotes {
            return Ok((&line[..i], &line[i..]));
        }
    }
    bail!("not an OpenSSH public key (expected '[options] type base64 [comment]')")
}

/// The type string at the start of an SSH wire-format key blob.
fn blob_type(blob: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    blob.get(4..4usize.checked_add(len)?)
}

/// Standard base64 with padding (what OpenSSH writes).
pub fn base64_decode(s: &str) -> Result<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = s.as_bytes();
    if bytes.is_empty() || bytes.len() & 3 != 0 {
        bail!("length is not a multiple of 4");
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let chunks = bytes.len() / 4;
    for (n, chunk) in bytes.chunks(4).enumerate() {
        let last = n + 1 == chunks;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            bail!("misplaced padding");
        }
        let mut acc = 0u32;
        for &c in &chunk[..4 - pad] {
            acc = (acc << 6) | val(c).context("invalid character")?;
        }
        acc <<= 6 * pad as u32;
        let three = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Ok(out)
}

/// What a text that holds no usable public key is, when we can tell.
fn private_key_kind(text: &str) -> Option<&'static str> {
    if text.contains("PuTTY-User-Key-File-") {
        return Some("a PuTTY private key");
    }
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with("-----BEGIN") && l.contains("PRIVATE KEY") {
            return Some("a private key");
        }
    }
    None
}

/// Parses every key in the text of a key file (blank lines and `#` comments skipped).
/// `source` names the file in errors. A private key, an RFC 4716 (`SSH2 PUBLIC KEY`) file,
/// a bad line, or no key at all is an error; errors name the file and line, never the
/// key material.
pub fn parse_keys(text: &str, source: &str) -> Result<Vec<PublicKey>> {
    if let Some(what) = private_key_kind(text) {
        bail!(
            "{source}: is {what}, not a public key: pass the public key (the .pub file, e.g. `ssh-keygen -y -f {source} > {source}.pub`); nothing was copied"
        );
    }
    if text.contains("---- BEGIN SSH2 PUBLIC KEY ----") {
        bail!("{source}: is an RFC 4716 public key: convert it with `ssh-keygen -i -f {source}`");
    }
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let key = PublicKey::parse(l).with_context(|| format!("{source}: line {}", n + 1))?;
        keys.push(key);
    }
    if keys.is_empty() {
        bail!("{source}: holds no public key");
    }
    Ok(keys)
}

/// Reads and parses a key file given on the command line (`--root-key`, `--stack-key`).
pub fn read_key_file(path: &Path) -> Result<Vec<PublicKey>> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{}: not a text file (not UTF-8)", path.display()))?;
    parse_keys(&text, &path.display().to_string())
}

/// The keys of every file, in order and without repeats (same type and blob); the first
/// unreadable, invalid or private key file is an error.
pub fn read_key_files(files: &[impl AsRef<Path>]) -> Result<Vec<PublicKey>> {
    let mut keys: Vec<PublicKey> = Vec::new();
    for f in files {
        for k in read_key_file(f.as_ref())? {
            if !keys.iter().any(|have| have.same_key(&k)) {
                keys.push(k);
            }
        }
    }
    Ok(keys)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Real public keys (generated for these tests; the private halves were discarded).
    pub const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH5MtzcSvmMSc4QzuI91jV6PvabZH2w7/O/Yzu6MM0SI alice@laptop";
    pub const ED25519_2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBtgOQ5R58u+rj+2AShhdmkxhcTlhdo+RjnASE1SODvN bob@desk";

    fn blob_for(kind: &str, body: &[u8]) -> String {
        let mut blob = (kind.len() as u32).to_be_bytes().to_vec();
        blob.extend_from_slice(kind.as_bytes());
        blob.extend_from_slice(&(body.len() as u32).to_be_bytes());
        blob.extend_from_slice(body);
        base64_encode(&blob)
    }

    fn base64_encode(data: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in data.chunks(3) {
            let n = c.len();
            let v = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= n {
                    s.push(A[(v >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }

    #[test]
    fn base64_round_trips_and_rejects_garbage() {
        for data in [&b""[..], b"a", b"ab", b"abc", b"abcd", b"\x00\xff\x10\x80"] {
            if data.is_empty() {
                continue;
            }
            assert_eq!(base64_decode(&base64_encode(data)).unwrap(), data);
        }
        for bad in ["", "abc", "ab=c", "a===", "ab!d", "AA==AAAA"] {
            assert!(base64_decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_every_known_type() {
        for kind in KEY_TYPES {
            let line = format!("{kind} {} me@host", blob_for(kind, b"key-bytes"));
            let k = PublicKey::parse(&line).unwrap();
            assert_eq!(k.kind, *kind);
            assert_eq!(k.comment.as_deref(), Some("me@host"));
            assert_eq!(k.line, line);
        }
        let k = PublicKey::parse(ED25519).unwrap();
        assert_eq!(k.blob.len(), 51);
        assert_eq!(k.comment.as_deref(), Some("alice@laptop"));
    }

    #[test]
    fn options_and_comments_do_not_change_identity() {
        let plain = PublicKey::parse(ED25519).unwrap();
        let rest = ED25519.rsplit_once(' ').unwrap().0;
        let with_opts = PublicKey::parse(&format!(
            "from=\"10.0.0.1,10.0.0.2\",command=\"echo a b\" {rest} other comment"
        ))
        .unwrap();
        assert_eq!(
            with_opts.options.as_deref(),
            Some("from=\"10.0.0.1,10.0.0.2\",command=\"echo a b\"")
        );
        assert_eq!(with_opts.comment.as_deref(), Some("other comment"));
        assert!(plain.same_key(&with_opts));
        let no_comment = PublicKey::parse(rest).unwrap();
        assert!(no_comment.comment.is_none() && plain.same_key(&no_comment));
        assert!(!plain.same_key(&PublicKey::parse(ED25519_2).unwrap()));
    }

    #[test]
    fn rejects_bad_lines_without_echoing_them() {
        let secretish = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0123456789";
        let mismatch = format!("ssh-rsa {}", blob_for("ssh-ed25519", b"k"));
        let cases: Vec<(String, &str)> = vec![
            (format!("{secretish} more"), "not an OpenSSH public key"),
            (format!("ssh-foo {secretish}"), "unknown key type 'ssh-foo'"),
            ("ssh-rsa".into(), "without key data"),
            (format!("ssh-rsa {secretish}!"), "not valid base64"),
            (
                format!("ssh-rsa {}", base64_encode(b"xx")),
                "not a ssh-rsa key",
            ),
            (
                mismatch,
                "is a 'ssh-ed25519' key but the line says 'ssh-rsa'",
            ),
            (secretish.into(), "not an OpenSSH public key"),
        ];
        for (line, want) in cases {
            let err = format!("{:#}", PublicKey::parse(&line).unwrap_err());
            assert!(err.contains(want), "{line}: {err}");
            assert!(!err.contains(secretish), "echoed: {err}");
        }
    }

    #[test]
    fn key_files_hold_several_keys_and_comments() {
        let text = format!("# team keys\n\n{ED25519}\n  {ED25519_2}  \n");
        let keys = parse_keys(&text, "team.pub").unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[1].line, ED25519_2);
        let err = format!("{:#}", parse_keys("# nothing\n", "e.pub").unwrap_err());
        assert_eq!(err, "e.pub: holds no public key");
        let err = format!(
            "{:#}",
            parse_keys(&format!("{ED25519}\nssh-rsa AAAA\n"), "k.pub").unwrap_err()
        );
        assert!(err.starts_with("k.pub: line 2: "), "{err}");
    }

    #[test]
    fn private_keys_are_refused_without_echoing_them() {
        let body = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW";
        for header in [
            "OPENSSH PRIVATE KEY",
            "RSA PRIVATE KEY",
            "EC PRIVATE KEY",
            "DSA PRIVATE KEY",
            "PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
        ] {
            let text = format!("-----BEGIN {header}-----\n{body}\n-----END {header}-----\n");
            let err = format!("{:#}", parse_keys(&text, "/keys/id_rsa").unwrap_err());
            assert!(err.contains("private key"), "{err}");
            assert!(err.contains(".pub"), "{err}");
            assert!(err.starts_with("/keys/id_rsa: "), "{err}");
            assert!(!err.contains(body), "echoed: {err}");
        }
        let putty = format!("PuTTY-User-Key-File-3: ssh-ed25519\nPrivate-Lines: 1\n{body}\n");
        assert!(format!("{:#}", parse_keys(&putty, "k.ppk").unwrap_err()).contains("PuTTY"));
        let rfc = "---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n---- END SSH2 PUBLIC KEY ----\n";
        assert!(format!("{:#}", parse_keys(rfc, "k").unwrap_err()).contains("RFC 4716"));
    }

    #[test]
    fn reads_key_files() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("id.pub");
        std::fs::write(&p, format!("{ED25519}\n")).unwrap();
        assert_eq!(read_key_file(&p).unwrap().len(), 1);
        let err = format!("{:#}", read_key_file(&t.path().join("nope")).unwrap_err());
        assert!(err.contains("nope: cannot read"), "{err}");
        std::fs::write(&p, b"\xff\xfe binary").unwrap();
        assert!(format!("{:#}", read_key_file(&p).unwrap_err()).contains("not a text file"));
    }
}
