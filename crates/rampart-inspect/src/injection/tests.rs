//! The detectors on values an attacker sends and values a user sends.

use super::*;

fn detected(p: u8, v: &str) -> Vec<&'static str> {
    InjectionDetector::new(p)
        .scan(v)
        .iter()
        .map(|f| f.detector.name())
        .collect()
}

#[test]
fn level_one_finds_the_classic_payloads() {
    for (v, d) in [
        ("1' OR '1'='1", "sqli"),
        ("1 UNION SELECT username, password FROM users--", "sqli"),
        ("admin'--", "sqli"),
        ("1; DROP TABLE users", "sqli"),
        ("<script>alert(1)</script>", "xss"),
        ("<img src=x onerror=alert(1)>", "xss"),
        ("javascript:alert(document.cookie)", "xss"),
        ("../../../../etc/passwd", "traversal"),
        ("..\\..\\windows\\win.ini", "traversal"),
        ("; cat /etc/shadow", "command"),
        ("| id", "command"),
        ("$(whoami)", "command"),
        ("`id`", "command"),
        ("http://169.254.169.254/latest/meta-data/", "ssrf"),
        ("file:///etc/hosts", "ssrf"),
    ] {
        assert!(detected(1, v).contains(&d), "{v:?}: {:?}", detected(1, v));
    }
}

#[test]
fn encodings_are_undone_before_matching() {
    for (v, d) in [
        ("%27%20OR%201%3D1--", "sqli"),
        ("%2527%2520OR%25201%253D1--", "sqli"),
        ("%u003cscript%u003ealert(1)%u003c/script%u003e", "xss"),
        ("&lt;script&gt;alert(1)&lt;/script&gt;", "xss"),
        ("<a href=\"jav&#x09;ascript&colon;alert(1)\">x</a>", "xss"),
        ("%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", "traversal"),
        ("..%252f..%252fetc%252fpasswd", "traversal"),
    ] {
        assert!(detected(1, v).contains(&d), "{v:?}: {:?}", detected(1, v));
    }
}

#[test]
fn everyday_values_pass_at_level_one() {
    for v in [
        "O'Brien",
        "Fish & Chips; cat lovers welcome",
        "It's 5 o'clock somewhere -- or so they say",
        "SELECT a plan that suits you from our range",
        "Tom & Jerry",
        "1 < 2, so 3 > 2",
        "user@example.com",
        "https://example.com/callback?a=1&b=2",
        "C:\\Users\\me\\Documents\\report.docx",
        "v1.2.3",
        "The union of two sets; select the larger one.",
        "2024-01-01T00:00:00Z",
        "<b>bold</b> and <i>italic</i>",
        "price: $10 (incl. tax)",
    ] {
        assert!(detected(1, v).is_empty(), "{v:?}: {:?}", detected(1, v));
    }
}

#[test]
fn higher_levels_add_rules() {
    assert!(detected(1, "http://127.0.0.1:8080/admin").is_empty());
    assert_eq!(detected(2, "http://127.0.0.1:8080/admin"), ["ssrf"]);
    assert!(detected(1, "<iframe src=//evil.example>").contains(&"xss"));
    assert!(detected(3, "a<b").contains(&"xss"));
    assert!(!detected(2, "a<b").contains(&"xss"));
}

#[test]
fn long_values_are_inspected_in_windows_all_the_way() {
    let padded = format!("{}' OR 1=1 --", "a ".repeat(20_000));
    assert!(detected(1, &padded).contains(&"sqli"));
    let mut across = "x".repeat(WINDOW - 6);
    across.push_str("<script>alert(1)</script>");
    assert!(detected(1, &across).contains(&"xss"));
    let benign = "lorem ipsum dolor sit amet ".repeat(2_000);
    assert!(detected(1, &benign).is_empty());
}

#[test]
fn scores_add_one_finding_per_detector() {
    let f = InjectionDetector::new(2).scan("1' UNION SELECT 1,2-- <script>alert(1)</script>");
    assert!(f.score() >= 10, "{f:?}");
    assert_eq!(f.iter().filter(|x| x.detector == Detector::Sqli).count(), 1);
}
