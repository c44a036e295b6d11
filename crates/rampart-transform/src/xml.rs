//! XML ↔ JSON for legacy XML and SOAP services (`routes[].transform.xml`), with one
//! documented mapping:
//!
//! | XML | JSON |
//! |---|---|
//! | the document `<a>…</a>` | `{"a": …}` |
//! | an element with text only, `<n>Ann</n>` | `"Ann"` (always a string; `<n/>` is `""`) |
//! | attributes `<u id="7">` | members `"@id": "7"` |
//! | child elements | members, in document order; a name repeated among siblings (or listed in `arrays`) becomes an array |
//! | text beside children or attributes | `"#text"` |
//!
//! From JSON to XML the same mapping runs backwards: the body is an object with one
//! member, the root element; arrays repeat their member's element; numbers and booleans
//! become text, `null` an empty element.
//!
//! Safe by construction (XXE, billion laughs): a `<!DOCTYPE` is refused outright, so no
//! entity can be declared; the only references resolved are the five predefined entities
//! and character references; nesting is capped at [`MAX_DEPTH`]; the body is bounded by
//! the caller. Only UTF-8 documents are read.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::XmlVersion;

use crate::body_ops::Node;

/// Deepest element nesting read.
pub(crate) const MAX_DEPTH: usize = 128;

/// How names and repeated elements are read.
#[derive(Debug, Default)]
pub(crate) struct XmlOptions {
    /// Drop namespace prefixes (`soap:Body` → `Body`) and `xmlns` attributes.
    pub(crate) strip_namespaces: bool,
    /// Element names that are always arrays, even when they appear once.
    pub(crate) arrays: Vec<Box<str>>,
}

/// Why an XML document or a JSON body could not be converted (for the access log).
pub(crate) type Refusal = &'static str;

/// An element being read.
struct Open {
    name: String,
    members: Vec<(Cow<'static, str>, Node<'static>)>,
    text: String,
}

fn name<'a>(raw: &'a str, opts: &XmlOptions) -> &'a str {
    match opts.strip_namespaces {
        true => raw.rsplit_once(':').map_or(raw, |(_, local)| local),
        false => raw,
    }
}

fn open(e: &BytesStart<'_>, opts: &XmlOptions) -> Result<Open, Refusal> {
    let raw = e.name();
    let mut members: Vec<(Cow<'static, str>, Node<'static>)> = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|_| "xml.bad_attribute")?;
        let key = a.key.into_inner();
        if opts.strip_namespaces && (key == "xmlns" || key.starts_with("xmlns:")) {
            continue;
        }
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|_| "xml.bad_reference")?;
        let member = name(key, opts);
        // Two attributes that read as one name (`a:id` and `b:id` with namespaces
        // stripped) would make one of them vanish: the document is refused instead.
        if members
            .iter()
            .any(|(k, _)| k.strip_prefix('@') == Some(member))
        {
            return Err("xml.duplicate_attribute");
        }
        members.push((
            Cow::Owned(format!("@{member}")),
            Node::Str(Cow::Owned(value.into_owned())),
        ));
    }
    Ok(Open {
        name: name(raw.into_inner(), opts).to_owned(),
        members,
        text: String::new(),
    })
}

/// Adds a finished child to its parent's members: a second element of one name turns
/// the member into an array.
fn add_child(parent: &mut Open, name: String, value: Node<'static>, opts: &XmlOptions) {
    let always = opts.arrays.iter().any(|a| **a == *name);
    match parent.members.iter_mut().find(|(k, _)| *k == name) {
        // Values read from XML are never arrays, so an array is one made here.
        Some((_, Node::Arr(items))) => items.push(value),
        Some((_, existing)) => {
            let first = std::mem::replace(existing, Node::Null);
            *existing = Node::Arr(vec![first, value]);
        }
        None if always => parent
            .members
            .push((Cow::Owned(name), Node::Arr(vec![value]))),
        None => parent.members.push((Cow::Owned(name), value)),
    }
}

fn close(el: Open) -> (String, Node<'static>) {
    let Open {
        name,
        mut members,
        text,
    } = el;
    if members.is_empty() {
        return (name, Node::Str(Cow::Owned(text)));
    }
    if !text.trim().is_empty() {
        members.push((Cow::Borrowed("#text"), Node::Str(Cow::Owned(text))));
    }
    (name, Node::Obj(members))
}

/// Reads an XML document into the JSON tree of the mapping.
pub(crate) fn to_node(body: &[u8], opts: &XmlOptions) -> Result<Node<'static>, Refusal> {
    let text = std::str::from_utf8(body).map_err(|_| "xml.not_utf8")?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<(String, Node<'static>)> = None;
    loop {
        let event = reader.read_event().map_err(|_| "xml.malformed")?;
        match event {
            Event::DocType(_) => return Err("xml.doctype"),
            Event::Decl(d) => {
                if let Some(enc) = d.encoding() {
                    let enc = enc.map_err(|_| "xml.malformed")?;
                    if !["utf-8", "utf8", "us-ascii"]
                        .iter()
                        .any(|e| enc.eq_ignore_ascii_case(e))
                    {
                        return Err("xml.not_utf8");
                    }
                }
            }
            Event::Start(e) => {
                if root.is_some() {
                    return Err("xml.malformed");
                }
                if stack.len() >= MAX_DEPTH {
                    return Err("xml.too_deep");
                }
                stack.push(open(&e, opts)?);
            }
            Event::Empty(e) => {
                if root.is_some() {
                    return Err("xml.malformed");
                }
                let (n, v) = close(open(&e, opts)?);
                match stack.last_mut() {
                    Some(parent) => add_child(parent, n, v, opts),
                    None => root = Some((n, v)),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("xml.malformed")?;
                let (n, v) = close(el);
                match stack.last_mut() {
                    Some(parent) => add_child(parent, n, v, opts),
                    None => root = Some((n, v)),
                }
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&content),
                    // Only whitespace may stand outside the root element.
                    None if content.trim().is_empty() => {}
                    None => return Err("xml.malformed"),
                }
            }
            Event::CData(c) => {
                let el = stack.last_mut().ok_or("xml.malformed")?;
                el.text.push_str(&c.xml10_content());
            }
            Event::GeneralRef(r) => {
                let el = stack.last_mut().ok_or("xml.malformed")?;
                match r.resolve_char_ref() {
                    Ok(Some(c)) => el.text.push(c),
                    Ok(None) => match quick_xml::escape::resolve_predefined_entity(&r) {
                        Some(s) => el.text.push_str(s),
                        // No DOCTYPE, so no entity but the predefined ones exists.
                        None => return Err("xml.bad_reference"),
                    },
                    Err(_) => return Err("xml.bad_reference"),
                }
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err("xml.malformed");
    }
    let (n, v) = root.ok_or("xml.malformed")?;
    Ok(Node::Obj(vec![(Cow::Owned(n), v)]))
}

/// Writes the JSON tree as an XML document (UTF-8, with a declaration).
pub(crate) fn from_node(node: &Node<'_>) -> Result<Vec<u8>, Refusal> {
    let Node::Obj(members) = node else {
        return Err("xml.json_root");
    };
    let [(root, value)] = members.as_slice() else {
        return Err("xml.json_root");
    };
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    element(root, value, &mut out, 0)?;
    Ok(out.into_bytes())
}

fn element(name: &str, value: &Node<'_>, out: &mut String, depth: usize) -> Result<(), Refusal> {
    if depth >= MAX_DEPTH {
        return Err("xml.too_deep");
    }
    if let Node::Arr(items) = value {
        for item in items {
            if matches!(item, Node::Arr(_)) {
                return Err("xml.nested_array");
            }
            element(name, item, out, depth + 1)?;
        }
        return Ok(());
    }
    if !is_xml_name(name) {
        return Err("xml.json_name");
    }
    out.push('<');
    out.push_str(name);
    let Node::Obj(members) = value else {
        return match scalar(value) {
            None => {
                out.push_str("/>");
                Ok(())
            }
            Some(text) => {
                out.push('>');
                escape(&text, false, out);
                close_tag(name, out);
                Ok(())
            }
        };
    };
    for (i, (k, v)) in members.iter().enumerate() {
        if let Some(attr) = k.strip_prefix('@') {
            if !is_xml_name(attr) {
                return Err("xml.json_name");
            }
            // XML allows an attribute once per element.
            if members[..i].iter().any(|(p, _)| p == k) {
                return Err("xml.duplicate_attribute");
            }
            let text = scalar(v).ok_or("xml.json_attribute")?;
            out.push(' ');
            out.push_str(attr);
            out.push_str("=\"");
            escape(&text, true, out);
            out.push('"');
        }
    }
    out.push('>');
    for (k, v) in members {
        if k.starts_with('@') {
            continue;
        }
        if k == "#text" {
            escape(&scalar(v).ok_or("xml.json_text")?, false, out);
            continue;
        }
        element(k, v, out, depth + 1)?;
    }
    close_tag(name, out);
    Ok(())
}

fn close_tag(name: &str, out: &mut String) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// The text of a scalar; `None` for `null`, objects and arrays (an attribute or text
/// cannot hold those).
fn scalar<'v>(v: &'v Node<'_>) -> Option<Cow<'v, str>> {
    Some(match v {
        Node::Str(s) => Cow::Borrowed(&**s),
        Node::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Node::Int(n) => Cow::Owned(n.to_string()),
        Node::Uint(n) => Cow::Owned(n.to_string()),
        Node::Float(n) => Cow::Owned(serde_json::to_string(n).ok()?),
        Node::Null | Node::Arr(_) | Node::Obj(_) => return None,
    })
}

/// Escapes text (and, in attributes, quotes); control characters XML 1.0 cannot carry
/// are dropped rather than written as invalid references.
fn escape(text: &str, attribute: bool, out: &mut String) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' if attribute => out.push_str("&quot;"),
            '\t' | '\n' | '\r' if attribute => {
                out.push_str(&format!("&#{};", c as u32));
            }
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

/// An XML 1.0 `Name`: letters, digits, `_`, `-`, `.`, `:`, not starting with a digit,
/// `-` or `.`. Anything else from a JSON member name could break out of the element.
fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_alphabetic() || first == '_' || first == ':')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

#[cfg(test)]
mod tests;

/// For the fuzz target (`fuzz/fuzz_targets/xml.rs`): reads `data` as XML (namespaces kept
/// or stripped by its first byte), then writes what was read back as XML and reads that
/// again; and reads `data` as JSON and writes it as XML. Whatever was written must read
/// back. Panics on a broken property.
#[doc(hidden)]
pub fn fuzz_xml(data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let opts = XmlOptions {
        strip_namespaces: flags & 1 == 1,
        arrays: if flags & 2 == 2 {
            vec!["a".into()]
        } else {
            Vec::new()
        },
    };
    if let Ok(node) = to_node(body, &opts) {
        let json = serde_json::to_vec(&node).expect("a tree read from XML writes as JSON");
        assert!(serde_json::from_slice::<serde_json::Value>(&json).is_ok());
        if let Ok(xml) = from_node(&node) {
            if let Err(e) = to_node(&xml, &XmlOptions::default()) {
                panic!(
                    "wrote XML that does not read back ({e}): {}",
                    String::from_utf8_lossy(&xml)
                );
            }
        }
    }
    if let Ok(node) = serde_json::from_slice::<Node<'_>>(body) {
        if let Ok(xml) = from_node(&node) {
            if let Err(e) = to_node(&xml, &XmlOptions::default()) {
                panic!(
                    "wrote XML that does not read back ({e}): {}",
                    String::from_utf8_lossy(&xml)
                );
            }
        }
    }
}
