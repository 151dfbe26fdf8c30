//! OpenSSH public keys: `[options] type base64 [comment]`, as in `id_rsa.pub` and
//! `authorized_keys`. A key is accepted only when it is a complete, well-formed OpenSSH
//! public key of the type its line names, checked the way OpenSSH's `sshkey.c` reads one
//! (the SSH wire format of RFC 4251: length-prefixed strings and mpints, nothing trailing).
//! Private keys, DSA keys and certificates are refused, and no error ever echoes key
//! material (a private key must not end up in a log).

use std::cmp::Ordering;
use std::fmt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Key types `authorized_keys` accepts.
pub const KEY_TYPES: &[&str] = &[
    "ssh-rsa",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ssh-ed25519@openssh.com",
];

/// OpenSSH's `SSH_RSA_MINIMUM_MODULUS_SIZE`.
const RSA_MIN_BITS: usize = 1024;
/// OpenSSH's `SSHBUF_MAX_BIGNUM` (2048 bytes), in bits.
const MAX_BIGNUM_BITS: usize = 16384;

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
        // The line goes verbatim into authorized_keys: no line breaks, escapes or NULs.
        if let Some(i) = line
            .bytes()
            .position(|b| b.is_ascii_control() && b != b'\t')
        {
            bail!(
                "line contains a control character (byte 0x{:02x} at column {})",
                line.as_bytes()[i],
                i + 1
            );
        }
        let is_type = |w: &str| KEY_TYPES.contains(&w) || refused_type(w).is_some();
        let (options, rest) = if is_type(first_word(line)) {
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
                if let Some(why) = refused_type(t) {
                    bail!("{why}");
                }
                bail!("unknown key type '{t}' (known: {})", KEY_TYPES.join(", "));
            }
            bail!("not an OpenSSH public key (expected 'type base64 [comment]')");
        }
        let b64 = parts.next().unwrap_or("").trim();
        if b64.is_empty() {
            bail!("{kind} key without key data");
        }
        let blob = STANDARD
            .decode(b64)
            .map_err(|e| anyhow!("key data is not valid base64 ({})", base64_problem(&e)))?;
        check_blob(kind, &blob)?;
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

/// A short lowercase token, safe to echo (type and curve names).
fn is_token(s: &str) -> bool {
    (1..=48).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-@._".contains(&b))
}

/// A token that could be a key type name (safe to echo).
fn looks_like_type(s: &str) -> bool {
    is_token(s) && s.contains('-')
}

/// Why a key type OpenSSH knows is refused here, if it is.
fn refused_type(t: &str) -> Option<String> {
    if t.ends_with("-cert-v01@openssh.com") || t.ends_with("-cert-v00@openssh.com") {
        return Some(format!(
            "'{t}' is an OpenSSH certificate: authorized_keys needs the plain public key \
             (the .pub file, not the -cert.pub one), or a `cert-authority` line with the \
             CA's public key"
        ));
    }
    (t == "ssh-dss").then(|| {
        "ssh-dss (DSA) keys are refused: OpenSSH disabled DSA by default in 7.0 and \
         removed it in 9.8; use an ed25519 key (`ssh-keygen -t ed25519`)"
            .to_string()
    })
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

/// What is wrong with the base64, without echoing any of it.
fn base64_problem(e: &base64::DecodeError) -> String {
    use base64::DecodeError::*;
    match e {
        InvalidByte(at, b'=') => format!("misplaced padding at offset {at}"),
        InvalidByte(at, _) => format!("invalid character at offset {at}"),
        InvalidLength(_) => "truncated: the length is not valid".into(),
        InvalidLastSymbol(at, _) => format!("non-canonical last character at offset {at}"),
        InvalidPadding => "missing or wrong padding".into(),
    }
}

/// The fields of an SSH wire-format blob, read front to back.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    /// The next RFC 4251 string (u32 big-endian length, then that many bytes).
    fn string(&mut self) -> Result<&'a [u8]> {
        let Some((len, rest)) = self.0.split_first_chunk::<4>() else {
            bail!(
                "key data is truncated (a field's length needs 4 bytes, {} remain)",
                self.0.len()
            );
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > rest.len() {
            bail!(
                "key data is truncated (a field says {len} bytes, {} remain)",
                rest.len()
            );
        }
        let (field, rest) = rest.split_at(len);
        self.0 = rest;
        Ok(field)
    }

    /// The magnitude (big-endian, no leading zeros) of the next RFC 4251 mpint, which must
    /// be non-negative, canonical and at most [`MAX_BIGNUM_BITS`].
    fn mpint(&mut self, what: &str) -> Result<&'a [u8]> {
        let magnitude = match self.string()? {
            [b, ..] if b & 0x80 != 0 => bail!("{what} is negative"),
            // A leading zero is needed only before a byte with the top bit set.
            [0] | [0, 0..=0x7f, ..] => {
                bail!("{what} is not a canonical mpint (needless leading zero byte)")
            }
            [0, rest @ ..] => rest,
            v => v,
        };
        if bits(magnitude) > MAX_BIGNUM_BITS {
            bail!(
                "{what} is {} bits; the maximum is {MAX_BIGNUM_BITS}",
                bits(magnitude)
            );
        }
        Ok(magnitude)
    }

    fn finish(&self, kind: &str) -> Result<()> {
        match self.0.len() {
            0 => Ok(()),
            1 => bail!("key data has 1 trailing byte after the {kind} key"),
            n => bail!("key data has {n} trailing bytes after the {kind} key"),
        }
    }
}

/// Bits of a big-endian magnitude without leading zeros.
fn bits(magnitude: &[u8]) -> usize {
    magnitude
        .first()
        .map_or(0, |b| magnitude.len() * 8 - b.leading_zeros() as usize)
}

/// Checks that `blob` is exactly one well-formed public key of type `kind` (one of
/// [`KEY_TYPES`]), as OpenSSH's `sshkey_from_blob` would accept it.
fn check_blob(kind: &str, blob: &[u8]) -> Result<()> {
    let mut f = Fields(blob);
    let t = f
        .string()
        .with_context(|| format!("key data is not a {kind} key"))?;
    if t != kind.as_bytes() {
        match std::str::from_utf8(t) {
            Ok(t) if looks_like_type(t) => {
                bail!("key data is a '{t}' key but the line says '{kind}'")
            }
            _ => bail!("key data is not a {kind} key"),
        }
    }
    match kind {
        "ssh-ed25519" | "sk-ssh-ed25519@openssh.com" => {
            let k = f.string()?;
            if k.len() != 32 {
                bail!("ed25519 key must be 32 bytes, it is {}", k.len());
            }
        }
        "ssh-rsa" => {
            let e = f.mpint("RSA public exponent")?;
            let n = f.mpint("RSA modulus")?;
            let odd = |v: &[u8]| v.last().is_some_and(|b| b & 1 == 1);
            // Canonical magnitudes: e == 1 is exactly [1].
            if !odd(e) || e == [1] {
                bail!("RSA public exponent must be odd and at least 3");
            }
            if !odd(n) {
                bail!("RSA modulus must be odd");
            }
            if bits(n) < RSA_MIN_BITS {
                bail!(
                    "RSA key is {} bits; the minimum is {RSA_MIN_BITS} bits",
                    bits(n)
                );
            }
        }
        _ => {
            let curve = Curve::of(kind).with_context(|| format!("unknown key type '{kind}'"))?;
            let id = f.string()?;
            if id != curve.name.as_bytes() {
                match std::str::from_utf8(id) {
                    Ok(id) if is_token(id) => {
                        bail!("key data names curve '{id}' but the line says '{kind}'")
                    }
                    _ => bail!("key data names another curve than the line's '{kind}'"),
                }
            }
            curve.check_point(f.string()?)?;
        }
    }
    if kind.starts_with("sk-") {
        let app = f.string()?;
        match std::str::from_utf8(app) {
            _ if app.is_empty() => bail!("security key application is empty"),
            Ok(a) if !a.contains('\0') => {}
            _ => bail!("security key application is not a UTF-8 string without NUL bytes"),
        }
    }
    f.finish(kind)
}

/// A NIST prime curve y^2 = x^3 - 3x + b (mod p) of prime order n (cofactor 1); the
/// constants are those of SEC 2 / FIPS 186 (as `openssl ecparam -param_enc explicit`
/// prints them), in hex.
struct Curve {
    name: &'static str,
    /// Bytes of a coordinate.
    size: usize,
    p: &'static str,
    b: &'static str,
    n: &'static str,
}

const P256: Curve = Curve {
    name: "nistp256",
    size: 32,
    p: "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
    b: "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
    n: "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
};
const P384: Curve = Curve {
    name: "nistp384",
    size: 48,
    p: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe\
        ffffffff0000000000000000ffffffff",
    b: "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875a\
        c656398d8a2ed19d2a85c8edd3ec2aef",
    n: "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf\
        581a0db248b0a77aecec196accc52973",
};
const P521: Curve = Curve {
    name: "nistp521",
    size: 66,
    p: "1ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\
        ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    b: "051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109\
        e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00",
    n: "1fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\
        a51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
};

impl Curve {
    fn of(kind: &str) -> Option<&'static Curve> {
        match kind {
            "ecdsa-sha2-nistp256" | "sk-ecdsa-sha2-nistp256@openssh.com" => Some(&P256),
            "ecdsa-sha2-nistp384" => Some(&P384),
            "ecdsa-sha2-nistp521" => Some(&P521),
            _ => None,
        }
    }

    /// An uncompressed point `0x04 || X || Y` on the curve that OpenSSH's
    /// `sshkey_ec_validate_public` accepts.
    fn check_point(&self, q: &[u8]) -> Result<()> {
        let (name, size) = (self.name, self.size);
        match q.first() {
            Some(2 | 3) => bail!(
                "{name} point is compressed; OpenSSH keys hold uncompressed points (0x04 || X || Y)"
            ),
            Some(4) if q.len() == 1 + 2 * size => {}
            Some(4) => bail!(
                "{name} point must be {} bytes, it is {}",
                1 + 2 * size,
                q.len()
            ),
            _ => bail!("{name} point is not an uncompressed point (0x04 || X || Y)"),
        }
        let (x, y) = (Uint::from_be(&q[1..=size]), Uint::from_be(&q[1 + size..]));
        let (p, b, n) = (
            Uint::from_hex(self.p),
            Uint::from_hex(self.b),
            Uint::from_hex(self.n),
        );
        if x >= p || y >= p {
            bail!("{name} point has a coordinate not below the field prime");
        }
        // y^2 + 3x == x^3 + b (mod p): all terms stay non-negative.
        let three_x = x.add_mod(x, p).add_mod(x, p);
        let lhs = y.mul_mod(y, p).add_mod(three_x, p);
        let rhs = x.mul_mod(x, p).mul_mod(x, p).add_mod(b, p);
        if lhs != rhs {
            bail!("{name} point is not on the curve");
        }
        // The rest of sshkey_ec_validate_public (nQ == infinity holds for every point of
        // a curve of prime order): log2(x), log2(y) > log2(n)/2 and x, y < n - 1.
        let n_1 = n.sub(Uint::from_be(&[1]));
        let half = n.bits() / 2;
        if x.bits() <= half || y.bits() <= half || x >= n_1 || y >= n_1 {
            bail!("{name} point is not a valid public key (OpenSSH refuses its coordinates)");
        }
        Ok(())
    }
}

/// A non-negative integer below 2^576 (enough for P-521 sums), little-endian 64-bit limbs.
/// Just what the curve check needs; not constant time (public keys are public).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Uint([u64; 9]);

impl Uint {
    /// From at most 72 big-endian bytes.
    fn from_be(bytes: &[u8]) -> Uint {
        let mut limbs = [0u64; 9];
        for (i, &b) in bytes.iter().rev().take(72).enumerate() {
            limbs[i / 8] |= u64::from(b) << (8 * (i % 8));
        }
        Uint(limbs)
    }

    /// From at most 144 hex digits (the curve constants above).
    fn from_hex(hex: &str) -> Uint {
        let mut limbs = [0u64; 9];
        let digits = hex.chars().rev().filter_map(|c| c.to_digit(16));
        for (i, d) in digits.take(144).enumerate() {
            limbs[i / 16] |= u64::from(d) << (4 * (i % 16));
        }
        Uint(limbs)
    }

    fn bits(&self) -> usize {
        (0..9)
            .rev()
            .find(|&i| self.0[i] != 0)
            .map_or(0, |i| 64 * i + 64 - self.0[i].leading_zeros() as usize)
    }

    fn bit(&self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }

    /// `self + o`; the callers keep it below 2^576.
    fn add(self, o: Uint) -> Uint {
        let mut r = [0u64; 9];
        let mut carry = false;
        for (i, limb) in r.iter_mut().enumerate() {
            let (s, c1) = self.0[i].overflowing_add(o.0[i]);
            let (s, c2) = s.overflowing_add(u64::from(carry));
            *limb = s;
            carry = c1 || c2;
        }
        Uint(r)
    }

    /// `self - o`; the callers ensure `self >= o`.
    fn sub(self, o: Uint) -> Uint {
        let mut r = [0u64; 9];
        let mut borrow = false;
        for (i, limb) in r.iter_mut().enumerate() {
            let (d, b1) = self.0[i].overflowing_sub(o.0[i]);
            let (d, b2) = d.overflowing_sub(u64::from(borrow));
            *limb = d;
            borrow = b1 || b2;
        }
        Uint(r)
    }

    /// `(self + o) mod p` for `self, o < p`.
    fn add_mod(self, o: Uint, p: Uint) -> Uint {
        let s = self.add(o);
        if s >= p {
            s.sub(p)
        } else {
            s
        }
    }

    /// `(self * o) mod p` for `self, o < p`, by doubling and adding.
    fn mul_mod(self, o: Uint, p: Uint) -> Uint {
        let mut r = Uint([0; 9]);
        for i in (0..o.bits()).rev() {
            r = r.add_mod(r, p);
            if o.bit(i) {
                r = r.add_mod(self, p);
            }
        }
        r
    }
}

impl Ord for Uint {
    fn cmp(&self, other: &Uint) -> Ordering {
        self.0.iter().rev().cmp(other.0.iter().rev())
    }
}

impl PartialOrd for Uint {
    fn partial_cmp(&self, other: &Uint) -> Option<Ordering> {
        Some(self.cmp(other))
    }
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
    let bytes = crate::argfile::read_regular(path, crate::argfile::KEY_FILE_MAX)?;
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
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::Index;

    // Real public keys, generated with ssh-keygen for these tests (`-t ed25519`, `-t rsa -b
    // 2048`, `-t ecdsa -b 256/384/521`); the private halves were discarded. The two ed25519
    // keys are shared with other crates' tests (`virthost_testkit`).
    pub use virthost_testkit::{ED25519, ED25519_2};
    const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDJm53x1CgdExBVieleIhCivEYuSG0vrEeJhMYoRV6hSNtmLG+3Df8uV8J+yqzLiokvCqeBOP/MvCOAm+5DX5lkiZnKT3ChywHriuMHeKKlnNGwqXxF7HgJy7WVUQYwr9Kd1LynY6HTnAl8epCZBVEOSM8/ugz22qYvgQXJNqj5GdTzoY4K34GP6iF5W2H+mayvoETIVrUouqqiWLWj3JcK1xeYx9ACd47elNJw9H7PDTaVMcHCkbY0q6Amc4dLMBcwOf2XyVK7SRH4WQZPLNJ/BrVVlCKlxDsnluEg3qsHOxof2nWAm/9Cn3wfJMc0PfVE475BkTtKAnVC1rf+tmtz rsa@test";
    const ECDSA_P256: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBDfLCknwvBDTnBbF4PCV807rGNjNlho9J9n2YUXHbpHmpznJ40RQ78x2yhnpzAcZpugEy5TXJUrPzLWUX8hlo10= p256@test";
    const ECDSA_P384: &str = "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBH28TTaOTX4NRs7cNombY0eIKaOI1SUhHP5djhOb1TwY7rrxMvNivLnUG8UTAI+ACC6WgMbEDP5GvcCjvgyfTc+neTSqZwZ/N2SZeokCe9Rtod9zhTe+VmUDBpYsp6zhxg== p384@test";
    const ECDSA_P521: &str = "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBABeEjWNj5d/CNx8xgoTT3yOvueCnT+wkNrNFGq6V0e+bKEXF+2Gd905qnWm+QdeGqdKrMpUpkA1q9ivzc670PAwowA/syt7if/goJ2+WDX8JEVCax4gJ8gCj3fUwOzL/HkqVgP4aiWMkqhsZg/JxMm1lYyVNPVMwNw3rsi0CVseUqlqOA== p521@test";

    fn b64(blob: &[u8]) -> String {
        STANDARD.encode(blob)
    }

    /// A blob of RFC 4251 strings.
    fn blob(fields: &[&[u8]]) -> Vec<u8> {
        let field = |f: &&[u8]| [&(f.len() as u32).to_be_bytes()[..], f].concat();
        fields.iter().flat_map(field).collect()
    }

    /// A key line (labelled with the first field) of these fields.
    fn line(fields: &[&[u8]]) -> String {
        let kind = String::from_utf8_lossy(fields[0]);
        format!("{kind} {}", b64(&blob(fields)))
    }

    /// The fields of a valid key line's blob.
    fn fields(line: &str) -> Vec<Vec<u8>> {
        let blob = PublicKey::parse(line).unwrap().blob;
        let mut f = Fields(&blob);
        std::iter::from_fn(|| (!f.0.is_empty()).then(|| f.string().unwrap().to_vec())).collect()
    }

    /// Every real key, plus the two security-key types: those cannot be generated without
    /// a token, so they are built from the real P-256 point and ed25519 key above, with
    /// the application "ssh:" that OpenSSH uses by default.
    fn valid_lines() -> Vec<String> {
        let (p, e) = (fields(ECDSA_P256), fields(ED25519));
        let sk = [
            line(&[
                b"sk-ecdsa-sha2-nistp256@openssh.com",
                b"nistp256",
                &p[2],
                b"ssh:",
            ]),
            line(&[b"sk-ssh-ed25519@openssh.com", &e[1], b"ssh:"]),
        ];
        let real = [RSA, ECDSA_P256, ECDSA_P384, ECDSA_P521, ED25519, ED25519_2].map(String::from);
        real.into_iter().chain(sk.map(|l| l + " sk@test")).collect()
    }

    fn valid_key(i: Index) -> PublicKey {
        let lines = valid_lines();
        PublicKey::parse(i.get::<String>(&lines)).unwrap()
    }

    #[test]
    fn parses_every_known_type() {
        let lines = valid_lines();
        for kind in KEY_TYPES {
            assert!(lines.iter().any(|l| first_word(l) == *kind), "{kind}");
        }
        for l in &lines {
            let k = PublicKey::parse(l).unwrap();
            let words: Vec<&str> = l.split(' ').collect();
            assert_eq!(
                (k.kind.as_str(), k.comment.as_deref()),
                (words[0], Some(words[2]))
            );
            assert_eq!(
                (k.blob, k.line.as_str()),
                (STANDARD.decode(words[1]).unwrap(), &l[..])
            );
        }
        assert_eq!(PublicKey::parse(ED25519).unwrap().blob.len(), 51);
    }

    #[test]
    fn curve_constants_have_their_sizes() {
        // Checked against `openssl ecparam -param_enc explicit`; the real keys above
        // check p and b, this guards n (a shorter n would refuse real keys).
        for (c, bits) in [(&P256, 256usize), (&P384, 384), (&P521, 521)] {
            let (p, n) = (Uint::from_hex(c.p), Uint::from_hex(c.n));
            assert_eq!((p.bits(), n.bits(), c.size), (bits, bits, bits.div_ceil(8)));
            assert!(n < p && Uint::from_hex(c.b) < p && p.bit(0) && n.bit(0));
        }
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
        let tabbed = PublicKey::parse(&ED25519.replace(' ', "\t")).unwrap();
        assert!(plain.same_key(&tabbed));
    }

    #[test]
    fn rejects_bad_keys_without_echoing_them() {
        let secretish = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0123456789";
        let (rsa, p, ed) = (fields(RSA), fields(ECDSA_P256), fields(ED25519));
        let (e, n, q, k) = (&rsa[1], &rsa[2], &p[2], &ed[1]);
        let ed_b64 = first_word(&ED25519[12..]);
        let mut off_curve = q.clone();
        off_curve[64] ^= 1;
        let compressed = [&[2 + (q[64] & 1)], &q[1..33]].concat();
        let big_x = [&[4], &[0xff; 32][..], &q[33..]].concat();
        let n768 = [&n[..96], &[n[96] | 1]].concat();
        let even_n = [&n[..n.len() - 1], &[n[n.len() - 1] & !1]].concat();
        let n16385 = [&[1], &[0xff; 2048][..]].concat();
        let sk_ed = b"sk-ssh-ed25519@openssh.com";
        let cases: Vec<(String, &str)> = vec![
            (
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBad".into(),
                "key data is truncated (a field says 32 bytes, 2 remain)",
            ),
            (
                line(&[b"ssh-ed25519", k, b"extra"]),
                "key data has 9 trailing bytes after the ssh-ed25519 key",
            ),
            (
                format!(
                    "ssh-ed25519 {}",
                    b64(&[&blob(&[b"ssh-ed25519", k])[..], b"12345"].concat())
                ),
                "key data has 5 trailing bytes after the ssh-ed25519 key",
            ),
            (
                line(&[sk_ed, k]),
                "a field's length needs 4 bytes, 0 remain",
            ),
            (
                format!("ssh-rsa {ed_b64}"),
                "is a 'ssh-ed25519' key but the line says 'ssh-rsa'",
            ),
            (format!("ssh-rsa {}", b64(b"xx")), "not a ssh-rsa key"),
            (
                line(&[b"ecdsa-sha2-nistp256", b"nistp384", q]),
                "key data names curve 'nistp384' but the line says 'ecdsa-sha2-nistp256'",
            ),
            (
                line(&[b"ecdsa-sha2-nistp256", b"nistp256", &off_curve]),
                "nistp256 point is not on the curve",
            ),
            (
                line(&[b"ecdsa-sha2-nistp256", b"nistp256", &compressed]),
                "point is compressed",
            ),
            (
                line(&[b"ecdsa-sha2-nistp256", b"nistp256", &big_x]),
                "not below the field prime",
            ),
            (
                line(&[b"ecdsa-sha2-nistp384", b"nistp384", q]),
                "nistp384 point must be 97 bytes, it is 65",
            ),
            (
                line(&[b"ssh-rsa", e, &n768]),
                "RSA key is 768 bits; the minimum is 1024 bits",
            ),
            (
                line(&[b"ssh-rsa", &[1, 0, 0], n]),
                "exponent must be odd and at least 3",
            ),
            (
                line(&[b"ssh-rsa", &[1], n]),
                "exponent must be odd and at least 3",
            ),
            (
                line(&[b"ssh-rsa", &[0, 1, 0, 1], n]),
                "exponent is not a canonical mpint",
            ),
            (line(&[b"ssh-rsa", e, &n[1..]]), "RSA modulus is negative"),
            (line(&[b"ssh-rsa", e, &even_n]), "RSA modulus must be odd"),
            (
                line(&[b"ssh-rsa", e, &n16385]),
                "RSA modulus is 16385 bits; the maximum is 16384",
            ),
            (
                line(&[b"ssh-ed25519", &k[..31]]),
                "ed25519 key must be 32 bytes, it is 31",
            ),
            (
                line(&[b"ssh-ed25519", &[&k[..], &[0]].concat()]),
                "it is 33",
            ),
            (line(&[sk_ed, k, b""]), "security key application is empty"),
            (
                line(&[sk_ed, k, b"\xffssh:"]),
                "application is not a UTF-8 string",
            ),
            (
                format!("ssh-dss {secretish} me"),
                "OpenSSH disabled DSA by default in 7.0",
            ),
            (format!("no-pty ssh-dss {secretish}"), "use an ed25519 key"),
            (
                format!("ssh-ed25519-cert-v01@openssh.com {ed_b64}"),
                "is an OpenSSH certificate: authorized_keys needs the plain public key",
            ),
            (
                format!("{ED25519}\x1b[2J x"),
                "line contains a control character (byte 0x1b",
            ),
            (
                format!("ssh-ed25519 {ed_b64} a\rb"),
                "contains a control character (byte 0x0d",
            ),
            (
                format!("ssh-ed25519 {ed_b64}xyz me"),
                "key data is not valid base64",
            ),
            (
                format!("ssh-ed25519 {ed_b64}=="),
                "key data is not valid base64",
            ),
            ("ssh-rsa AB==".into(), "non-canonical last character"),
            (format!("ssh-rsa {secretish}!"), "not valid base64"),
            (
                format!("from=\"10.0.0.1 {ED25519}"),
                "not an OpenSSH public key",
            ),
            (format!("{secretish} more"), "not an OpenSSH public key"),
            (format!("ssh-foo {secretish}"), "unknown key type 'ssh-foo'"),
            ("ssh-rsa".into(), "without key data"),
            (secretish.into(), "not an OpenSSH public key"),
        ];
        for (line, want) in cases {
            let err = format!("{:#}", PublicKey::parse(&line).unwrap_err());
            assert!(err.contains(want), "{line}: {err}");
            let key_data = line.split([' ', '\t']).max_by_key(|w| w.len()).unwrap();
            let tail = &key_data[key_data.len().saturating_sub(16)..];
            assert!(key_data.len() < 16 || !err.contains(tail), "echoed: {err}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256, failure_persistence: None, ..ProptestConfig::default()
        })]

        #[test]
        fn never_panics(s in any::<String>(), bytes in vec(any::<u8>(), 0..300), t in any::<Index>()) {
            // Also a known label and type string, so that the fields are parsed.
            let kind = t.get(KEY_TYPES);
            let deep = format!("{kind} {}", b64(&[blob(&[kind.as_bytes()]), bytes.clone()].concat()));
            for text in [&s[..], &String::from_utf8_lossy(&bytes), &deep] {
                let _ = PublicKey::parse(text);
                let _ = parse_keys(text, "k.pub");
            }
        }

        #[test]
        fn strict_prefixes_are_refused(key in any::<Index>(), cut in any::<Index>()) {
            let k = valid_key(key);
            let prefix = &k.blob[..cut.index(k.blob.len())];
            let line = format!("{} {}", k.kind, b64(prefix));
            prop_assert!(PublicKey::parse(&line).is_err());
        }

        #[test]
        fn appended_bytes_are_refused(key in any::<Index>(), extra in vec(any::<u8>(), 1..=16)) {
            let k = valid_key(key);
            let longer = [&k.blob[..], &extra].concat();
            let line = format!("{} {}", k.kind, b64(&longer));
            prop_assert!(PublicKey::parse(&line).is_err());
        }

        #[test]
        fn flipped_bytes_are_refused_or_round_trip(
            key in any::<Index>(), flips in vec((any::<Index>(), 1..=255u8), 1..4)
        ) {
            let k = valid_key(key);
            let mut blob = k.blob.clone();
            for (at, x) in flips {
                blob[at.index(k.blob.len())] ^= x;
            }
            if let Ok(m) = PublicKey::parse(&format!("{} {} c", k.kind, b64(&blob))) {
                prop_assert_eq!(&m.blob, &blob);
                let again = PublicKey::parse(&format!("{} {}", m.kind, b64(&m.blob))).unwrap();
                prop_assert!(again.same_key(&m));
            }
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
