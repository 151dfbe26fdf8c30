//! Every file bootstrap writes in a language (polkit JavaScript, polkit `.pkla`, sudoers,
//! modprobe.d, udev rules) is rendered here, each value through the quoting function of
//! that language. Inputs are validated before (a [`crate::username::UserName`] is only
//! ever valid), so these are the second lock: whatever string reaches them, the file means
//! what it says or is not rendered at all (an error naming the language and the value,
//! escaped).

use anyhow::{bail, Result};

/// What a refused value is shown as: escaped, never raw (no newline or escape sequence
/// reaches a terminal or log).
fn shown(s: &str) -> String {
    s.escape_default().to_string()
}

/// A JavaScript string literal holding exactly `s`: letters, digits, `_`, `.`, `-`, `@`
/// and space as themselves, every other UTF-16 unit as `\uXXXX`. So no quote, backslash,
/// line terminator (U+2028 and U+2029 included, which ES5, polkit's duktape, does not allow
/// raw in a literal), `</script>` or comment opener survives.
pub fn js_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for unit in s.encode_utf16() {
        match char::from_u32(unit as u32) {
            Some(c) if c.is_ascii_alphanumeric() || "_.-@ ".contains(c) => out.push(c),
            _ => out.push_str(&format!("\\u{unit:04x}")),
        }
    }
    out.push('"');
    out
}

/// A polkit rule (polkit >= 0.106) that answers YES to `action` for the user named `user`
/// and says nothing for anything else. The comment names neither.
pub fn polkit_rule(action: &str, user: &str) -> String {
    format!(
        "// Managed by virthost bootstrap: lets the user named below manage libvirt.\n\
         polkit.addRule(function(action, subject) {{\n    \
             if (action.id == {action} && subject.user == {user}) {{\n        \
                 return polkit.Result.YES;\n    \
             }}\n\
         }});\n",
        action = js_string(action),
        user = js_string(user),
    )
}

/// One element of a GLib key-file string list, as polkit's local authority reads
/// `Identity=` (`g_key_file_get_string_list`, then each element as a `g_pattern` glob):
/// `\`, `;` and a leading space escaped; control characters (a newline would start a new
/// key) and the glob characters `*` and `?` (GLib's globs have no escape) refused.
pub fn pkla_list_item(s: &str) -> Result<String> {
    if s.is_empty() {
        bail!(".pkla: an empty value");
    }
    if let Some(c) = s.chars().find(|c| c.is_control() || *c == '*' || *c == '?') {
        bail!(
            ".pkla: '{}' holds {}, which a local-authority file cannot match literally",
            shown(s),
            shown(&c.to_string())
        );
    }
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ' ' if i == 0 => out.push_str("\\s"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// A local-authority file (polkit 0.105) granting `action` to the user named `user`: one
/// group with a fixed name, one identity, one action.
pub fn pkla(action: &str, user: &str) -> Result<String> {
    Ok(format!(
        "# Managed by virthost bootstrap: lets the user named below manage libvirt.\n\
         [virthost: the VM user manages libvirt]\n\
         Identity={}\n\
         Action={}\n\
         ResultAny=yes\n\
         ResultInactive=yes\n\
         ResultActive=yes\n",
        pkla_list_item(&format!("unix-user:{user}"))?,
        pkla_list_item(action)?,
    ))
}

/// Words sudoers gives a meaning of their own: never a user name here.
const SUDOERS_RESERVED: &[&str] = &["ALL"];

/// A user name as one sudoers word: every character but `[A-Za-z0-9_-]` backslash-escaped
/// (sudoers' lexer takes `\` + any character but tab and newline as that character), so
/// `%group`, `+netgroup`, `#uid`, `,`, `:`, `=`, `!`, `(`, quotes and spaces stay part of
/// the name. Refused: empty, control or non-ASCII characters (no escape holds them),
/// sudoers' reserved `ALL`, and a leading `#`, which sudo takes for a uid even escaped or
/// quoted (measured with sudo 1.9.13's cvtsudoers: `\#0` and `"#0"` are both uid 0).
pub fn sudoers_user(s: &str) -> Result<String> {
    if s.is_empty() {
        bail!("sudoers: an empty user name");
    }
    if !s.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        bail!(
            "sudoers: '{}' holds a control or non-ASCII character",
            shown(s)
        );
    }
    if s.starts_with('#') {
        bail!("sudoers: '{s}' starts with '#', which sudoers reads as a uid");
    }
    if SUDOERS_RESERVED.contains(&s) {
        bail!("sudoers: '{s}' is a reserved word there, not a user name");
    }
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if !(c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(out)
}

/// The sudoers file giving `user` passwordless sudo for everything.
pub fn sudoers_nopasswd_all(user: &str) -> Result<String> {
    Ok(format!(
        "# Managed by virthost bootstrap.\n{} ALL=(ALL) NOPASSWD: ALL\n",
        sudoers_user(user)?
    ))
}

/// A file name for `/etc/sudoers.d/` that names `user`: sudo skips names that hold a `.`
/// or end in `~`, so every character but `[A-Za-z0-9-]` is written `_XX` (its hex), which
/// keeps two names from ever sharing a file (`a_b` is `a_5fb`, `a.b` is `a_2eb`).
pub fn sudoers_file_name(prefix: &str, user: &str) -> String {
    let mut out = String::from(prefix);
    for b in user.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// Whether `s` is one modprobe.d token: no whitespace (which separates), `#` (a comment)
/// or control character.
fn modprobe_token(s: &str, what: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.,=/:+".contains(&b));
    if !ok {
        bail!("modprobe.d: '{}' is not a valid {what}", shown(s));
    }
    Ok(())
}

/// `options MODULE key=value ...`, one line, after a comment.
pub fn modprobe_options(comment: &str, module: &str, params: &[(&str, &str)]) -> Result<String> {
    modprobe_token(module, "module name")?;
    let mut line = format!("options {module}");
    for (k, v) in params {
        if k.contains('=') {
            bail!("modprobe.d: '{}' is not a valid parameter name", shown(k));
        }
        modprobe_token(k, "parameter name")?;
        modprobe_token(v, "parameter value")?;
        line.push_str(&format!(" {k}={v}"));
    }
    Ok(format!("{}{line}\n", comment_line("#", comment)?))
}

/// `# text\n`; a comment may not hold a line break (what follows would be read as code).
fn comment_line(marker: &str, text: &str) -> Result<String> {
    if text.chars().any(char::is_control) {
        bail!("a comment holds a control character: '{}'", shown(text));
    }
    Ok(format!("{marker} {text}\n"))
}

/// A udev value in double quotes: udev has no escape inside them, and `$` and `%` start
/// substitutions, so `"`, `\`, `$`, `%` and control characters are refused.
fn udev_value(s: &str) -> Result<String> {
    if s.chars().any(|c| c.is_control() || "\"\\$%".contains(c)) {
        bail!("udev: '{}' cannot be a value", shown(s));
    }
    Ok(format!("\"{s}\""))
}

fn udev_key(s: &str) -> Result<()> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
        bail!("udev: '{}' is not a key", shown(s));
    }
    Ok(())
}

/// One udev rule: `KEY=="value"` matches, then `KEY="value"` assignments.
pub fn udev_rule(
    comment: &str,
    matches: &[(&str, &str)],
    assigns: &[(&str, &str)],
) -> Result<String> {
    let mut parts = Vec::new();
    for (ops, list) in [("==", matches), ("=", assigns)] {
        for (k, v) in list {
            udev_key(k)?;
            parts.push(format!("{k}{ops}{}", udev_value(v)?));
        }
    }
    Ok(format!(
        "{}{}\n",
        comment_line("#", comment)?,
        parts.join(", ")
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The shared list of hostile names, fed to the renderers directly: the second lock
    /// must hold without the first.
    pub use virthost_testkit::HOSTILE_NAMES as HOSTILE;

    #[test]
    fn js_strings_hold_exactly_their_text() {
        assert_eq!(js_string("stack"), "\"stack\"");
        assert_eq!(js_string("a\"b"), "\"a\\u0022b\"");
        assert_eq!(js_string("😀"), "\"\\ud83d\\ude00\"");
        for s in HOSTILE {
            let lit = js_string(s);
            let inner = &lit[1..lit.len() - 1];
            assert!(
                inner
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-@ \\".contains(c)),
                "{lit}"
            );
            // JSON's string grammar is JavaScript's for these escapes: it reads the text back.
            let back: String = serde_json::from_str(&lit).unwrap();
            assert_eq!(&back, s);
        }
    }

    #[test]
    fn the_polkit_rule_has_one_condition_whatever_the_name() {
        for s in HOSTILE {
            let rule = polkit_rule("org.libvirt.unix.manage", s);
            assert_eq!(rule.lines().count(), 6, "{rule}");
            assert_eq!(rule.matches('"').count(), 4, "{rule}");
            assert!(!rule.contains("||"), "{rule}");
        }
    }

    /// polkit 0.105 reads a `.pkla` with GLib's key-file parser: the list of the
    /// `Identity` key, unescaped as `g_key_file_get_string_list` does.
    fn keyfile_list(value: &str) -> Vec<String> {
        let (mut items, mut cur, mut chars) = (vec![], String::new(), value.chars());
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('s') => cur.push(' '),
                    Some('n') => cur.push('\n'),
                    Some('t') => cur.push('\t'),
                    Some('r') => cur.push('\r'),
                    Some(o) => cur.push(o),
                    None => panic!("dangling escape in {value}"),
                },
                ';' => items.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        if !cur.is_empty() {
            items.push(cur);
        }
        items
    }

    #[test]
    fn a_pkla_names_one_identity_or_is_refused() {
        let ok = pkla("org.libvirt.unix.manage", "stack").unwrap();
        assert!(ok.contains("\nIdentity=unix-user:stack\n"), "{ok}");
        for s in HOSTILE {
            let Ok(text) = pkla("org.libvirt.unix.manage", s) else {
                assert!(
                    s.chars().any(|c| c.is_control() || c == '*' || c == '?'),
                    "{s:?}"
                );
                continue;
            };
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 7, "{text}");
            assert_eq!(lines.iter().filter(|l| l.starts_with('[')).count(), 1);
            let ids: Vec<&str> = lines
                .iter()
                .filter_map(|l| l.strip_prefix("Identity="))
                .collect();
            assert_eq!(ids.len(), 1);
            assert_eq!(keyfile_list(ids[0]), [format!("unix-user:{s}")], "{text}");
            assert!(lines.contains(&"Action=org.libvirt.unix.manage"));
        }
    }

    #[test]
    fn sudoers_words_and_file_names() {
        assert_eq!(sudoers_user("stack").unwrap(), "stack");
        assert_eq!(sudoers_user("john.doe").unwrap(), "john\\.doe");
        assert_eq!(sudoers_user("%admin").unwrap(), "\\%admin");
        for s in ["ALL", "", "a\nb", "é", "a\tb", "#0", "#x"] {
            assert!(sudoers_user(s).is_err(), "{s:?}");
        }
        for s in HOSTILE {
            if let Ok(file) = sudoers_nopasswd_all(s) {
                assert_eq!(file.lines().count(), 2, "{file}");
                // Every byte that is not a name character is escaped: no operator is left.
                let word = file
                    .lines()
                    .nth(1)
                    .unwrap()
                    .strip_suffix(" ALL=(ALL) NOPASSWD: ALL")
                    .unwrap();
                let mut prev_escape = false;
                for c in word.chars() {
                    assert!(
                        prev_escape || c == '\\' || c.is_ascii_alphanumeric() || "_-".contains(c),
                        "{word}"
                    );
                    prev_escape = !prev_escape && c == '\\';
                }
            }
        }
        assert_eq!(sudoers_file_name("virthost-", "stack"), "virthost-stack");
        let names: Vec<String> = ["a_b", "a.b", "a_2eb", "a$", "a-b"]
            .iter()
            .map(|u| sudoers_file_name("virthost-", u))
            .collect();
        for n in &names {
            assert!(
                !n.contains('.') && !n.ends_with('~') && !n.contains('/'),
                "{n}"
            );
        }
        let mut uniq = names.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), names.len(), "{names:?}");
    }

    #[test]
    fn modprobe_and_udev_values_cannot_add_lines() {
        let conf = modprobe_options("nested", "kvm_amd", &[("nested", "1")]).unwrap();
        assert_eq!(conf, "# nested\noptions kvm_amd nested=1\n");
        let rule = udev_rule(
            "kvm",
            &[("KERNEL", "kvm")],
            &[("GROUP", "kvm"), ("MODE", "0660")],
        )
        .unwrap();
        assert_eq!(
            rule,
            "# kvm\nKERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0660\"\n"
        );
        for s in HOSTILE {
            // (rendered text, the key=value pairs or fields its code line must have)
            for (text, fields) in [
                (modprobe_options("c", s, &[("nested", "1")]), 3),
                (modprobe_options("c", "kvm", &[(s, "1")]), 3),
                (modprobe_options("c", "kvm", &[("nested", s)]), 3),
                (modprobe_options(s, "kvm", &[]), 2),
                (udev_rule("c", &[("KERNEL", s)], &[]), 1),
                (udev_rule("c", &[(s, "kvm")], &[]), 1),
                (udev_rule(s, &[], &[("GROUP", "kvm")]), 1),
            ] {
                let Ok(text) = text else { continue };
                assert_eq!(text.lines().count(), 2, "{s:?}: {text}");
                let code = text.lines().nth(1).unwrap();
                assert!(!code.starts_with('#'), "{s:?}: {text}");
                if code.starts_with("options ") {
                    assert!(!code.contains('#'), "{s:?}: {text}");
                    assert_eq!(code.split_whitespace().count(), fields, "{s:?}: {text}");
                } else {
                    assert_eq!(code.matches('"').count(), 2 * fields, "{s:?}: {text}");
                }
            }
        }
    }
}
