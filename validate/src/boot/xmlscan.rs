//! Escaping for the XML validate writes (network and domain descriptions). What libvirt
//! writes (capabilities, network descriptions) is read with roxmltree.

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

    #[test]
    fn escapes_what_xml_needs() {
        assert_eq!(escape("a<'&"), "a&lt;&apos;&amp;");
        let x = format!("<a b='{}'>{}</a>", escape("'\"<&>"), escape("<&>"));
        let doc = roxmltree::Document::parse(&x).unwrap();
        assert_eq!(doc.root_element().attribute("b"), Some("'\"<&>"));
        assert_eq!(doc.root_element().text(), Some("<&>"));
    }
}
