//! Data protection end to end: personal data and secrets that requests carry into the
//! gateway (e-mail addresses, card numbers, tokens used as identifiers in paths) reach
//! the upstream unchanged and never the access log.

mod support;

use support::*;

/// Planted values, each as a client might send it in a path or as a bare query key.
const PLANTED: &[&str] = &[
    "jane.doe@example.com",
    "4111111111111111",
    "4111 1111 1111 1111",
    "078-05-1120",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "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",
    "DE89370400440532013000",
];

#[tokio::test]
async fn personal_data_in_paths_reaches_the_upstream_and_never_the_access_log() {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let yaml = format!(
        "version: 1\nworkers: 2\naccess_log: {{ output: \"{}\" }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         upstreams: {{ up: {{ targets: [{{ url: \"http://{}\" }}] }} }}\n\
         routes: [{{ name: all, match: {{ path_prefix: / }}, upstream: up }}]\n",
        log.display(),
        up.addr
    );
    let gw = start_in(&yaml, dir);
    let encoded = |v: &str| v.replace('@', "%40").replace(' ', "%20");
    for v in PLANTED {
        for path in [
            format!("/users/{}/orders", encoded(v)),
            format!("/lookup?{}", encoded(v)),
            format!("/lookup?{}&page=2", v.replace(' ', "+")),
        ] {
            let r = get(gw.http(), &path).await;
            assert_eq!(r.status, 200, "{path}");
            // The upstream gets the request as the client sent it.
            assert!(
                up.last().uri.ends_with(&path),
                "{path} became {}",
                up.last().uri
            );
        }
    }
    let last = access_log_line(&log, "\"/done\"");
    let _ = get(gw.http(), "/done").await;
    last.await;
    let text = std::fs::read_to_string(&log).unwrap();
    for v in PLANTED {
        for form in [v.to_string(), encoded(v), v.replace(' ', "+")] {
            assert!(
                !text.contains(&form),
                "{form} is in the access log:\n{text}"
            );
        }
    }
    for mask in ["[email]", "[card]", "[ssn]", "[jwt]", "[api_key]", "[iban]"] {
        assert!(
            text.contains(&format!("/users/{mask}/orders")),
            "{mask}:\n{text}"
        );
        assert!(text.contains(&format!("/lookup?{mask}")), "{mask}:\n{text}");
    }
    // Ordinary paths are logged as they are.
    assert!(text.contains("\"path\":\"/done\""));
}

#[tokio::test]
async fn chosen_query_values_are_logged_masked_and_others_never() {
    let up = TestUpstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let yaml = format!(
        "version: 1\nworkers: 1\naccess_log: {{ output: \"{}\", query_values: [page, q], headers: [user-agent, x-customer] }}\nlisteners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\n\
         upstreams: {{ up: {{ targets: [{{ url: \"http://{}\" }}] }} }}\n\
         routes: [{{ name: all, match: {{ path_prefix: / }}, upstream: up }}]\n",
        log.display(),
        up.addr
    );
    let gw = start_in(&yaml, dir);
    let path = "/search?q=jane%40example.com&page=2&token=s3cr3t-value&q=shoes";
    let headers = [
        ("user-agent", "curl/8.5"),
        ("x-customer", "card 4111 1111 1111 1111"),
        ("x-other", "never-logged"),
    ];
    assert_eq!(get_with(gw.http(), path, &headers).await.status, 200);
    assert!(up.last().uri.ends_with(path));
    let line = access_log_line(&log, "/search").await;
    assert!(
        line.contains(r#""path":"/search?q=[email]&page=2&token&q=shoes""#),
        "{line}"
    );
    assert!(!line.contains("s3cr3t") && !line.contains("jane"), "{line}");
    // Chosen headers, masked; the others never.
    assert!(
        line.contains(r#""headers":{"user-agent":"curl/8.5","x-customer":"card [card]"}"#),
        "{line}"
    );
    assert!(
        !line.contains("never-logged") && !line.contains("4111"),
        "{line}"
    );
}

#[test]
fn credentials_are_never_logged_values() {
    assert_config_errors(&[
        (
            "identity: { api_keys: { query_param: api_key } }\naccess_log: { query_values: [page, api_key] }",
            "access_log.query_values[1]: `api_key` carries API keys",
        ),
        (
            "access_log: { headers: [user-agent, Authorization] }",
            "access_log.headers[1]: `authorization` carries credentials",
        ),
        (
            "access_log: { headers: [x-api-key] }",
            "access_log.headers[0]: `x-api-key` carries credentials",
        ),
        ("access_log: { headers: [cookie] }", "`cookie` carries credentials"),
        ("access_log: { headers: [\"bad name\"] }", "`bad name` is not a header name"),
    ]);
}
