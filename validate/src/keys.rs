//! OpenSSH public keys: key files given with `--root-key`/`--stack-key`, and the lines of an
//! `authorized_keys` file (options before the key type are allowed there).
//!
//! TODO(shared): switch to `bootstrap::sshkey` once the lead merges it; this is the minimal
//! private parser until then.

use std::path::Path;

/// Key types OpenSSH accepts in authorized_keys.
const TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-dss",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kind: String,
    /// The base64 blob: what identifies the key (comments and options do not).
    pub blob: String,
    pub comment: String,
}

impl PublicKey {
    /// `ssh-ed25519 AAAAC3Nz…Xk2 (comment)`, short enough for a detail line.
    pub fn label(&self) -> String {
        let tail = &self.blob[self.blob.len().saturating_sub(8)..];
        if self.comment.is_empty() {
            format!("{} …{tail}", self.kind)
        } else {
            format!("{} …{tail} ({})", self.kind, self.comment)
        }
    }

    /// Parses one line: `[options] type base64 [comment]`; `None` for blank, comment or
    /// invalid lines.
    pub fn parse_line(line: &str) -> Option<PublicKey> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let tokens = split_tokens(line);
        let at = tokens.iter().position(|t| TYPES.contains(&t.as_str()))?;
        let kind = tokens[at].clone();
        let blob = tokens.get(at + 1)?.clone();
        let bytes = base64_decode(&blob)?;
        // The blob starts with the length-prefixed key type.
        let n = u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
        if bytes.get(4..4 + n)? != kind.as_bytes() {
            return None;
        }
        let comment = tokens[at + 2..].join(" ");
        Some(PublicKey {
            kind,
            blob,
            comment,
        })
    }
}

/// Splits on whitespace, keeping double-quoted option values (`command="a b"`) whole.
fn split_tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

/// Every key of `text` (authorized_keys or a .pub file).
pub fn parse_all(text: &str) -> Vec<PublicKey> {
    text.lines().filter_map(PublicKey::parse_line).collect()
}

/// Reads a key file given on the command line: unreadable, or no valid key in it, is a
/// usage error with a message.
pub fn load_key_file(path: &Path) -> Result<Vec<PublicKey>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    let bad: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim().starts_with('#'))
        .filter(|(_, l)| PublicKey::parse_line(l).is_none())
        .map(|(i, _)| i + 1)
        .collect();
    if !bad.is_empty() {
        return Err(format!(
            "key file {}: line {} is not an OpenSSH public key (expected e.g. `ssh-ed25519 AAAA... comment`)",
            path.display(),
            bad[0]
        ));
    }
    let keys = parse_all(&text);
    if keys.is_empty() {
        return Err(format!("key file {}: no public key in it", path.display()));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvu4a4oH6Ce0IqchEycCo1TyRgbRn6ZnNm+CymBbb0Y infrared@host";

    #[test]
    fn parses_keys_with_options_and_comments() {
        let k = PublicKey::parse_line(ED).unwrap();
        assert_eq!(
            (k.kind.as_str(), k.comment.as_str()),
            ("ssh-ed25519", "infrared@host")
        );
        let with_opts = format!("command=\"echo a b\",no-pty {ED}");
        assert_eq!(PublicKey::parse_line(&with_opts).unwrap().blob, k.blob);
        assert!(k.label().contains("infrared@host"));
    }

    #[test]
    fn rejects_garbage_and_mismatched_types() {
        assert!(PublicKey::parse_line("ssh-ed25519 not*base64").is_none());
        // An ed25519 blob labelled ssh-rsa.
        let lie = ED.replace("ssh-ed25519 ", "ssh-rsa ");
        assert!(PublicKey::parse_line(&lie).is_none());
        assert!(PublicKey::parse_line("# comment").is_none());
    }
}
