//! Just enough XML scanning for the libvirt documents validate reads (capabilities, pool
//! and network descriptions): elements by name and their attributes. libvirt writes these
//! documents itself, in a stable shape; a full XML parser would add nothing here.

/// Every start tag `<name ...>` or `<name .../>` of `doc`, as the text between `<` and `>`.
pub fn tags<'a>(doc: &'a str, name: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let open = format!("<{name}");
    let mut rest = doc;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let boundary = after.chars().next();
        if matches!(boundary, Some(' ' | '>' | '/' | '\n' | '\t')) {
            if let Some(end) = after.find('>') {
                out.push(&rest[i + 1..i + open.len() + end]);
            }
        }
        rest = after;
    }
    out
}

/// The value of attribute `name` in a start tag returned by [`tags`].
pub fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = tag;
    while let Some(i) = rest.find(name) {
        let before_ok = i == 0 || rest[..i].ends_with([' ', '\n', '\t']);
        let after = &rest[i + name.len()..];
        if before_ok {
            if let Some(v) = after.strip_prefix('=') {
                let quote = v.chars().next()?;
                if quote == '\'' || quote == '"' {
                    let v = &v[1..];
                    return v.find(quote).map(|end| &v[..end]);
                }
            }
        }
        rest = after;
    }
    None
}

/// The text of every `<name>text</name>` element of `doc`.
pub fn texts<'a>(doc: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        match after.find(&close) {
            Some(end) => {
                out.push(after[..end].trim());
                rest = &after[end..];
            }
            None => break,
        }
    }
    out
}

/// The sections `<name ...> ... </name>` of `doc`, including the tags.
pub fn sections<'a>(doc: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i..];
        match after.find(&close) {
            Some(end) => {
                out.push(&after[..end + close.len()]);
                rest = &after[end + close.len()..];
            }
            None => break,
        }
    }
    out
}

/// `s` with `&`, `<`, `>`, `'` and `"` escaped, for attribute values and text.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: &str = "<capabilities>\n  <guest>\n    <os_type>hvm</os_type>\n    <arch name='x86_64'>\n      <domain type='qemu'/>\n      <domain type=\"kvm\"/>\n    </arch>\n  </guest>\n  <domainfoo type='x'/>\n</capabilities>";

    #[test]
    fn finds_tags_attrs_texts_sections() {
        let doms: Vec<_> = tags(CAPS, "domain")
            .into_iter()
            .filter_map(|t| attr(t, "type"))
            .collect();
        assert_eq!(doms, ["qemu", "kvm"]);
        assert_eq!(texts(CAPS, "os_type"), ["hvm"]);
        assert_eq!(sections(CAPS, "guest").len(), 1);
        assert_eq!(
            attr("ip address='10.0.0.1' netmask='255.0.0.0'", "address"),
            Some("10.0.0.1")
        );
        assert_eq!(attr("ip xaddress='1'", "address"), None);
        assert_eq!(escape("a<'&"), "a&lt;&apos;&amp;");
    }
}
