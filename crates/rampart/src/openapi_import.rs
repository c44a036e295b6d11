//! `rampart openapi import FILE`: routes for an OpenAPI document, one per path template
//! with its methods, each validating its requests against the document, so a team starts
//! from its contract instead of writing routes by hand.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

/// The `routes:` block for the document at `file`, as written in a config next to it
/// (`openapi: <file as given>`), each route sent to `upstream`.
pub fn import(file: &Path, upstream: &str) -> Result<String, String> {
    let outline = rampart_inspect::openapi_outline(file)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Routes for {:?} {}: {} paths, {} operations (from {}).\n\
         # Each validates its requests against the document; point `upstream` at yours.",
        outline.title,
        outline.version,
        outline.paths.len(),
        outline.operations,
        file.display()
    );
    out.push_str("routes:\n");
    let mut names = HashSet::new();
    let openapi = json(&file.display().to_string());
    // Templates the router cannot tell apart (`/compare/{basehead}` and
    // `/compare/{base}...{head}`) share one route; the validation tells them apart.
    let mut routes: Vec<(String, String, Vec<String>)> = Vec::new();
    let shape = |p: &str| {
        p.split('/')
            .map(|seg| if seg.starts_with('{') { "{}" } else { seg })
            .collect::<Vec<_>>()
            .join("/")
    };
    for (template, methods) in &outline.paths {
        if methods.is_empty() {
            continue;
        }
        let path = format!("{}{}", outline.base_path, router_path(template));
        match routes.iter_mut().find(|(_, p, _)| shape(p) == shape(&path)) {
            Some((_, _, ms)) => {
                for m in methods {
                    if !ms.contains(m) {
                        ms.push(m.clone());
                    }
                }
            }
            None => routes.push((unique(&mut names, &slug(template)), path, methods.clone())),
        }
    }
    for (name, path, methods) in routes {
        let _ = writeln!(
            out,
            "  - name: {name}\n    match: {{ path: {}, methods: [{}] }}\n    upstream: {upstream}\n    validate: {{ openapi: {openapi} }}",
            json(&path),
            methods.join(", ")
        );
    }
    Ok(out)
}

/// A YAML double-quoted scalar (JSON's string syntax is one).
fn json(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The template in the router's syntax: `{name}` segments kept (names made valid);
/// a segment with text around its parameters (`{name}.json`) becomes one whole-segment
/// parameter, and the validation does the precise match.
fn router_path(template: &str) -> String {
    let mut used = HashSet::new();
    let segments: Vec<String> = template
        .split('/')
        .enumerate()
        .map(|(i, seg)| {
            if !seg.contains('{') {
                return seg.to_string();
            }
            let whole = seg.starts_with('{') && seg.ends_with('}') && seg.matches('{').count() == 1;
            let base = if whole {
                seg[1..seg.len() - 1]
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '_' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect::<String>()
            } else {
                format!("segment{i}")
            };
            let mut name = if base.is_empty() || base.starts_with(|c: char| c.is_ascii_digit()) {
                format!("p{base}")
            } else {
                base
            };
            while !used.insert(name.clone()) {
                name.push('_');
            }
            format!("{{{name}}}")
        })
        .collect();
    segments.join("/")
}

/// A route name from a template: `/items/{id}` → `items-id`.
fn slug(template: &str) -> String {
    let mut s = String::new();
    for c in template.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() {
        "root".into()
    } else {
        s
    }
}

fn unique(names: &mut HashSet<String>, base: &str) -> String {
    let mut name = base.to_string();
    let mut n = 2;
    while !names.insert(name.clone()) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_become_router_paths_and_names() {
        assert_eq!(router_path("/items/{id}"), "/items/{id}");
        assert_eq!(router_path("/files/{name}.json"), "/files/{segment2}");
        assert_eq!(router_path("/c/{base}...{head}"), "/c/{segment2}");
        assert_eq!(router_path("/a/{x-y}/{x_y}"), "/a/{x_y}/{x_y_}");
        assert_eq!(slug("/items/{id}/parts"), "items-id-parts");
        assert_eq!(slug("/"), "root");
    }
}
