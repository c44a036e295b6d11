//! Parsing and validation of config files: every mistake is reported with its YAML path.

use rampart_config::{parse, ByteSize, TlsVersion};

const MINIMAL: &str = r#"
version: 1
listeners:
  - { name: public, bind: "127.0.0.1:8080" }
upstreams:
  echo:
    targets: [{ url: "http://127.0.0.1:9000" }]
routes:
  - name: all
    match: { path_prefix: / }
    upstream: echo
"#;

fn errors_of(yaml: &str) -> Vec<String> {
    parse(yaml)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn accepts_minimal_config_with_safe_defaults() {
    let spec = parse(MINIMAL).unwrap();
    assert_eq!(spec.limits.max_header_bytes, ByteSize(16 * 1024));
    assert_eq!(spec.limits.max_body_bytes, ByteSize(1024 * 1024));
    assert_eq!(spec.limits.header_timeout.get().as_secs(), 10);
    assert!(spec.access_log.enabled);
}

#[test]
fn rejects_unknown_key_with_its_path() {
    let yaml = MINIMAL.replace("upstream: echo", "upstream: echo\n    upstrem: echo");
    let errs = errors_of(&yaml);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("routes[0]"), "{errs:?}");
    assert!(errs[0].contains("upstrem"), "{errs:?}");
}

#[test]
fn reports_every_unknown_key_and_the_semantic_errors_in_one_run() {
    let yaml = format!(
        "{MINIMAL}  - name: second\n    match: {{ path_prefix: /b }}\n    upstream: nowhere\n    upstrem: typo\nlisteners_extra: 1\n"
    );
    let errs = errors_of(&yaml);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("routes[1].upstrem: unknown field")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("listeners_extra: unknown field")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("routes[1].upstream") && e.contains("nowhere")),
        "{errs:?}"
    );
    assert_eq!(errs.len(), 3, "{errs:?}");
}

#[test]
fn rejects_wrong_type_with_its_path() {
    let yaml = MINIMAL.replace(
        "targets: [{ url: \"http://127.0.0.1:9000\" }]",
        "targets: [{ url: \"http://127.0.0.1:9000\", weight: heavy }]",
    );
    let errs = errors_of(&yaml);
    assert!(
        errs[0].starts_with("upstreams.echo.targets[0].weight: "),
        "{errs:?}"
    );
}

#[test]
fn reports_every_semantic_error_at_once() {
    let yaml = MINIMAL
        .replace("upstream: echo", "upstream: billing")
        .replace("version: 1", "version: 2");
    let errs = errors_of(&yaml);
    assert!(
        errs.contains(&"version: unsupported version 2; this Rampart reads version 1".to_string()),
        "{errs:?}"
    );
    assert!(
        errs.contains(
            &"routes[0].upstream: unknown upstream \"billing\" (defined: echo)".to_string()
        ),
        "{errs:?}"
    );
}

#[test]
fn reads_tls_min_version_quoted_or_not() {
    for v in ["1.3", "\"1.3\""] {
        let yaml = MINIMAL.replace(
            "bind: \"127.0.0.1:8080\" }",
            &format!("bind: \"127.0.0.1:8443\", tls: {{ certificates: [{{ cert_file: a.pem, key_file: a.key }}], min_version: {v} }} }}"),
        );
        let spec = parse(&yaml).unwrap();
        assert_eq!(
            spec.listeners[0].tls.as_ref().unwrap().min_version,
            TlsVersion::Tls13
        );
    }
    let yaml = MINIMAL.replace(
        "bind: \"127.0.0.1:8080\" }",
        "bind: \"127.0.0.1:8443\", tls: { certificates: [{ cert_file: a.pem, key_file: a.key }], min_version: \"1.1\" } }",
    );
    assert!(errors_of(&yaml)[0].starts_with("listeners[0].tls.min_version: "));
}

#[test]
fn rejects_billion_laughs_within_budget() {
    let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..30 {
        let p = i - 1;
        yaml.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    assert!(parse(&yaml).is_err());
}

#[test]
fn rejects_inline_secret_without_echoing_it() {
    let yaml = format!("{MINIMAL}admin: {{ token: \"hunter2-inline\" }}\n");
    let errs = errors_of(&yaml);
    assert!(
        errs[0].starts_with("admin.token: inline secrets are not allowed"),
        "{errs:?}"
    );
    assert!(!errs[0].contains("hunter2"), "secret echoed: {errs:?}");
}

#[test]
fn accepts_secret_references_and_requires_a_token_off_loopback() {
    let yaml = format!("{MINIMAL}admin: {{ token: {{ env: RAMPART_ADMIN_TOKEN }} }}\n");
    let spec = parse(&yaml).unwrap();
    assert_eq!(spec.admin.unwrap().bind.to_string(), "127.0.0.1:9901");
    let yaml = format!("{MINIMAL}admin: {{ bind: \"0.0.0.0:9901\" }}\n");
    let errs = errors_of(&yaml);
    assert!(
        errs[0].starts_with(
            "admin.token: is required when admin.bind (0.0.0.0:9901) is not a loopback address"
        ),
        "{errs:?}"
    );
}

#[test]
fn a_consumer_store_needs_a_place_a_redis_and_a_pepper() {
    let errs = errors_of(&format!("{MINIMAL}consumer_store: {{ kind: embedded }}\n"));
    assert!(
        errs.iter().any(|e| e.starts_with("consumer_store.path:")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("identity.api_keys.pepper:")),
        "{errs:?}"
    );
    let errs = errors_of(&format!(
        "{MINIMAL}consumer_store: {{ kind: redis, path: x.redb, resync: 10ms }}\n"
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("consumer_store.kind:") && e.contains("redis")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with("consumer_store.path:")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with("consumer_store.resync:")),
        "{errs:?}"
    );
    let errs = errors_of(&format!("{MINIMAL}consumer_store: {{ kind: etcd }}\n"));
    assert!(
        errs.iter().any(|e| e.contains("consumer_store.kind")),
        "{errs:?}"
    );
    let ok = format!(
        "{MINIMAL}state_dir: /var/lib/rampart\nconsumer_store: {{ kind: embedded }}\nidentity: {{ api_keys: {{ pepper: {{ env: PEPPER }} }} }}\n"
    );
    let spec = parse(&ok).unwrap();
    let store = spec.consumer_store.unwrap();
    assert_eq!(
        store.file(spec.state_dir.as_deref(), std::path::Path::new("/etc")),
        Some("/var/lib/rampart/consumers.redb".into())
    );
}
