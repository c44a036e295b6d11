//! The rules beside libinjection: traversal, command injection and SSRF, and the
//! keyword rules of the higher paranoia levels. Pattern rules are compiled once per
//! process, over bytes with ASCII semantics (small automata; the `regex` crate matches in
//! linear time, so no input can make a rule backtrack), each with the literal prefilter
//! the crate extracts; the traversal and SSRF checks are short scans in code.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::bytes::{Regex, RegexBuilder};

use super::Detector;

/// One pattern rule: its id (in logs), what it detects, the paranoia level from which it
/// runs, and the points a match adds (CRS severities: critical 5, error 4, warning 3,
/// notice 2).
pub(crate) struct Rule {
    pub(crate) id: &'static str,
    pub(crate) detector: Detector,
    pub(crate) level: u8,
    pub(crate) severity: u8,
    /// Whether the rule can match a value with no [`special`] byte (SQL keywords alone).
    pub(crate) plain: bool,
    pattern: &'static str,
}

const fn rule(
    id: &'static str,
    detector: Detector,
    level: u8,
    severity: u8,
    pattern: &'static str,
) -> Rule {
    Rule {
        id,
        detector,
        level,
        severity,
        plain: false,
        pattern,
    }
}

/// A rule that can match words alone, without any [`special`] byte.
const fn words(mut r: Rule) -> Rule {
    r.plain = true;
    r
}

/// The bytes that markup, script, shell lines, paths, URLs and most SQL need. A value
/// with none of them is letters, digits, spaces and light punctuation: only the rules
/// marked [`words`] (and libinjection's SQL, behind [`sql_words`]) can find anything in
/// it, so the others are not run.
pub(crate) fn special(v: &[u8]) -> bool {
    v.iter().any(|c| {
        matches!(
            c,
            b'<' | b'>'
                | b'\''
                | b'"'
                | b'`'
                | b';'
                | b'|'
                | b'&'
                | b'$'
                | b'\n'
                | b'\r'
                | 0
                | b'/'
                | b'\\'
                | b':'
                | b'('
                | b')'
                | b'='
                | b'#'
                | b'*'
                | b'{'
                | b'}'
        )
    })
}

/// SQL words an injection without any [`special`] byte is made of (`1 or 1`,
/// `1 union select password from users`, `1 order by 5`).
static SQL_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?i)\b(?:or|and|xor|div|union|select|insert|update|delete|drop|sleep|benchmark|waitfor|exec|execute|having|order|group|like|rlike|regexp|procedure|limit|information_schema|sysobjects)\b",
    )
});

/// Whether a plain value holds a SQL word worth libinjection's look.
pub(crate) fn sql_words(v: &[u8]) -> bool {
    SQL_WORDS.is_match(v)
}

fn compile(pattern: &str) -> Regex {
    RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .unwrap_or_else(|e| panic!("built-in rule does not compile: {e}"))
}

use Detector::{Command, Sqli, Traversal, Xss};

/// Commands an injected shell line runs first.
macro_rules! commands {
    () => {
        "(?:cat|ls|id|whoami|uname|wget|curl|nc|ncat|netcat|bash|sh|zsh|ksh|ping|nslookup|dig|rm|chmod|chown|python[23]?|perl|ruby|php|sleep|echo|powershell|cmd|ifconfig|ipconfig|passwd|kill|telnet|ssh|find|touch|mkdir|tftp|base64|sudo|su|reboot|shutdown|type|dir|env|printenv|timeout|xterm)(?:\\.exe)?"
    };
}

pub(crate) static RULES: &[Rule] = &[
    // Markup and script.
    rule("xss.script_tag", Xss, 1, 5, r"(?i)<\s*script[\s/>]"),
    rule(
        "xss.event_handler",
        Xss,
        1,
        5,
        r#"(?i)<[a-z][^>]*[\s/"'\x00-\x20]on[a-z]{3,32}\s*="#,
    ),
    rule(
        "xss.script_url",
        Xss,
        1,
        5,
        r#"(?i)(?:^|=\s*["'`]?)\s*(?:java|vb|live)script\s*:"#,
    ),
    rule(
        "xss.active_tag",
        Xss,
        2,
        4,
        r"(?i)<\s*(?:iframe|object|embed|svg|math|base|meta|link|style|form|frame|frameset|applet|img|image|video|audio|body|input|details|marquee|isindex|xml|xss)\b",
    ),
    rule(
        "xss.handler_name",
        Xss,
        2,
        5,
        r"(?i)\bon(?:error|load|unload|mouse[a-z]+|click|dblclick|focus[a-z]*|blur|toggle|pointer[a-z]+|animation[a-z]+|transition[a-z]+|key[a-z]+|submit|change|input|begin|end|wheel|drag[a-z]*|drop|copy|paste|scroll|resize|message|hashchange|popstate|pageshow|beforeprint|afterprint)\s*=",
    ),
    rule(
        "xss.script_words",
        Xss,
        2,
        5,
        r"(?i)\b(?:java|vb)script\s*:|:\s*expression\s*\(|\b(?:alert|confirm|prompt|eval)\s*(?:\(\s*[^)\s]|`)|\bdocument\s*\.\s*(?:cookie|domain|write|location)|\bString\s*\.\s*fromCharCode\b",
    ),
    rule(
        "xss.js_breakout",
        Xss,
        1,
        5,
        r#"(?i)['"`;]\s*[;,+\-)]*\s*(?:alert|confirm|prompt|eval|Function|setTimeout|setInterval|fetch)\s*[(`]"#,
    ),
    rule("xss.any_tag", Xss, 3, 3, r"(?i)<[a-z!/?]"),
    // SQL beyond libinjection's fingerprints.
    words(rule(
        "sqli.union_select",
        Sqli,
        2,
        5,
        r"(?i)\bunion\b(?:\s|/\*.{0,64}?\*/|\(|\+)*(?:all\b|distinct\b)?(?:\s|/\*.{0,64}?\*/|\(|\+)*select\b",
    )),
    words(rule(
        "sqli.functions",
        Sqli,
        2,
        5,
        r"(?i)\b(?:sleep|benchmark|pg_sleep|extractvalue|updatexml|load_file|group_concat|dbms_pipe\.receive_message|utl_inaddr\.get_host_address)\s*\(|\bwaitfor\s+(?:delay|time)\b|\binto\s+(?:out|dump)file\b|\binformation_schema\b|\bsys(?:objects|columns|tables)\b|\bxp_cmdshell\b|@@version\b|/\*!\d*",
    )),
    rule(
        "sqli.tautology",
        Sqli,
        2,
        5,
        // `' or '1'='1`, `" and 1=1`: a boolean then a comparison (prose's "either 'a'
        // or 'b'" has no comparison).
        r#"(?i)['"`]\s*(?:\bor\b|\band\b|\bxor\b|\|\||&&)\s*[-+(]*\s*['"`]?\w*['"`]?\s*(?:[=<>!]|\blike\b|\bis\b|\bin\b|\bbetween\b|r?like\b|\bregexp\b)"#,
    ),
    rule(
        "sqli.stacked",
        Sqli,
        2,
        5,
        r"(?i);\s*(?:drop|delete|insert|update|truncate|alter|create|exec|execute|shutdown|declare|select)\s",
    ),
    rule(
        "sqli.quote_operator",
        Sqli,
        3,
        3,
        r#"(?i)['"`]\s*(?:[-+*/%=<>!|&^;)#]|\b(?:or|and|union|select|like|between|having|where|order|group)\b)"#,
    ),
    words(rule(
        "sqli.statement",
        Sqli,
        3,
        3,
        r"(?i)\b(?:select|insert|update|delete|drop|union|create|alter)\b.{0,64}?\b(?:from|into|set|table|where|select|values)\b",
    )),
    rule(
        "sqli.keyword_meta",
        Sqli,
        4,
        2,
        r#"(?i)(?:--|/\*|['";]).*\b(?:select|union|insert|update|delete|drop|or|and)\b|\b(?:select|union|insert|update|delete|drop)\b.*(?:--|/\*|['";])"#,
    ),
    // Shell lines.
    rule(
        "command.chained",
        Command,
        1,
        5,
        concat!(
            r"(?i)(?:[;|&\n]|\$\()\s*(?:(?:/usr)?/s?bin/)?",
            commands!(),
            // An argument after a space, but not a Markdown table's next `|`.
            r#"(?:\s*$|[;|&`)<>]|\s+[-/~.$'"`\d<>&;\\])"#
        ),
    ),
    rule(
        "command.backtick",
        Command,
        1,
        5,
        concat!(
            r#"(?i)(?:^|['";|&])\s*`\s*(?:(?:/usr)?/s?bin/)?"#,
            commands!(),
            r"(?:\s[^`]{0,64})?`"
        ),
    ),
    rule(
        "command.shell_syntax",
        Command,
        2,
        5,
        r"(?i)\$\{IFS\}|\$IFS\b|\$\(\s*[a-z]|(?:^|[\s/])(?:/bin/(?:ba|z|k)?sh|cmd\.exe|powershell\.exe)\b|\|\s*(?:ba|z)?sh\b",
    ),
    rule(
        "command.separator",
        Command,
        3,
        3,
        concat!(r"(?i)(?:[;|&`\n]|\$\()\s*", commands!(), r"\b"),
    ),
    // Files an attacker reads once a path is theirs.
    rule(
        "traversal.system_file",
        Traversal,
        1,
        5,
        r"(?i)(?:^|[/\\])(?:etc[/\\](?:passwd|shadow|group|hosts|issue|sudoers)\b|proc[/\\]self[/\\]|windows[/\\](?:win\.ini|system32\b)|boot\.ini\b|winnt[/\\])",
    ),
    rule(
        "traversal.secret_file",
        Traversal,
        2,
        5,
        r"(?i)(?:^|[/\\])(?:\.htaccess|\.htpasswd|\.ssh[/\\]|\.git[/\\]|\.env$|web\.config\b|id_rsa\b|\.aws[/\\]credentials)",
    ),
];

/// Each rule of [`RULES`], compiled (same order).
pub(crate) static COMPILED: LazyLock<Vec<Regex>> =
    LazyLock::new(|| RULES.iter().map(|r| compile(r.pattern)).collect());

/// A path that climbs: a `..` segment, with `/` or `\` as separator.
pub(crate) fn climbs(value: &str) -> bool {
    if !value.contains("..") || !value.contains(['/', '\\']) {
        return false;
    }
    value.split(['/', '\\']).any(|s| s == "..")
}

/// What an SSRF check found in a URL-valued field: the rule, its level and severity.
pub(crate) fn ssrf(value: &str, paranoia: u8) -> Option<(&'static str, u8)> {
    let v = value.trim_start();
    let (scheme, rest) = v.split_once(':')?;
    if scheme.is_empty()
        || scheme.len() > 16
        || !scheme
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+')
    {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let rest = rest.strip_prefix("//")?;
    if matches!(
        scheme.as_str(),
        "file"
            | "gopher"
            | "dict"
            | "ldap"
            | "ldaps"
            | "tftp"
            | "jar"
            | "netdoc"
            | "phar"
            | "expect"
    ) {
        return Some(("ssrf.scheme", 5));
    }
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(h) = host.strip_prefix('[') {
        h.split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if matches!(
        host.as_str(),
        "169.254.169.254"
            | "metadata.google.internal"
            | "metadata"
            | "100.100.100.200"
            | "169.254.170.2"
    ) || host == "fd00:ec2::254"
    {
        return Some(("ssrf.metadata", 5));
    }
    if paranoia < 2 {
        return None;
    }
    let internal = match parse_host_ip(&host) {
        Some(IpAddr::V4(ip)) => internal_v4(ip),
        Some(IpAddr::V6(ip)) => internal_v6(ip),
        None => {
            host == "localhost"
                || host.ends_with(".localhost")
                || host.ends_with(".internal")
                || host.ends_with(".local")
        }
    };
    if internal {
        return Some(("ssrf.internal_host", 5));
    }
    None
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified() || {
        let [a, b, ..] = ip.octets();
        a == 100 && (64..128).contains(&b) || a == 0
    }
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return internal_v4(v4);
    }
    let first = ip.segments()[0];
    ip.is_loopback() || ip.is_unspecified() || first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80
}

/// An address as URL parsers read hosts: dotted quads whose parts may be decimal, octal
/// (`0177`) or hex (`0x7f`), fewer than four parts (`127.1`, `2130706433`), or IPv6.
fn parse_host_ip(host: &str) -> Option<IpAddr> {
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(v6));
    }
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(4);
    for p in &parts {
        let n = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            u64::from_str_radix(h, 16).ok()?
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(p, 8).ok()?
        } else {
            p.parse::<u64>().ok()?
        };
        nums.push(n);
    }
    let (last, head) = nums.split_last()?;
    let mut addr: u64 = 0;
    for (i, n) in head.iter().enumerate() {
        if *n > 255 {
            return None;
        }
        addr |= n << (24 - 8 * i);
    }
    let room = 32 - 8 * head.len() as u32;
    if *last >= 1u64 << room {
        return None;
    }
    Some(IpAddr::V4(Ipv4Addr::from((addr | last) as u32)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_compiles() {
        for r in RULES {
            assert!(
                RegexBuilder::new(r.pattern).unicode(false).build().is_ok(),
                "{}",
                r.id
            );
        }
        assert_eq!(COMPILED.len(), RULES.len());
        assert!(sql_words(b"1 OR 1") && sql_words(b"1 union select 2") && !sql_words(b"Oregon"));
    }

    #[test]
    fn hosts_are_read_as_url_parsers_read_them() {
        for (host, ip) in [
            ("127.0.0.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("10.0.300", "10.0.1.44"),
        ] {
            assert_eq!(parse_host_ip(host), ip.parse().ok(), "{host}");
        }
        assert_eq!(parse_host_ip("256.1.1.1"), None);
        assert_eq!(parse_host_ip("example.com"), None);
    }

    #[test]
    fn ssrf_flags_metadata_and_internal_hosts() {
        assert_eq!(
            ssrf("http://169.254.169.254/latest", 1),
            Some(("ssrf.metadata", 5))
        );
        assert_eq!(ssrf("gopher://x:70/_", 1), Some(("ssrf.scheme", 5)));
        assert_eq!(ssrf("http://127.0.0.1/", 1), None);
        for internal in [
            "http://127.0.0.1/",
            "http://user@2130706433:80/",
            "https://[::1]/",
            "http://localhost./admin",
            "http://10.1.2.3",
            "http://[::ffff:192.168.0.1]/",
        ] {
            assert_eq!(
                ssrf(internal, 2),
                Some(("ssrf.internal_host", 5)),
                "{internal}"
            );
        }
        for fine in [
            "https://example.com/cb",
            "mailto:a@b.c",
            "not a url",
            "http:/x",
        ] {
            assert_eq!(ssrf(fine, 4), None, "{fine}");
        }
    }

    #[test]
    fn climbing_needs_a_dot_dot_segment() {
        assert!(climbs("../../etc"));
        assert!(climbs("a\\..\\b"));
        assert!(!climbs("wait.../really"));
        assert!(!climbs(".."));
        assert!(!climbs("v1.2..3/x"));
    }
}
