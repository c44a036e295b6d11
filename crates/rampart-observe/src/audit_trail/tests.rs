use super::*;

fn settings(dir: &Path, key: &[u8], every: u64) -> TrailSettings {
    TrailSettings {
        path: dir.join("audit.jsonl"),
        signing_key: key.to_vec(),
        checkpoint_every: every,
        checkpoint_interval: Duration::from_secs(3600),
        max_events_per_second: 100,
        fsync: Fsync::Always,
        checkpoint_copy: Some(dir.join("checkpoints.jsonl")),
        syslog: None,
    }
}

/// A trail of `n` admin entries, closed (so it ends with a stop entry and a checkpoint);
/// returns (trail text, checkpoint copy, public key).
fn written(dir: &Path, n: u64, every: u64) -> (String, String, Vec<u8>) {
    let (key, public) = generate_key().unwrap();
    let t = AuditTrail::open(settings(dir, &key, every)).unwrap();
    for i in 0..n {
        t.record(
            "admin",
            Fields::new()
                .str("path", &format!("/admin/x{i}"))
                .num("status", 200),
        );
    }
    drop(t);
    (
        std::fs::read_to_string(dir.join("audit.jsonl")).unwrap(),
        std::fs::read_to_string(dir.join("checkpoints.jsonl")).unwrap(),
        public,
    )
}

#[test]
fn a_written_trail_verifies_and_ends_signed() {
    let d = tempfile::tempdir().unwrap();
    let (text, copy, public) = written(d.path(), 7, 3);
    let v = verify(&text, Some(&public), Some(&copy)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.path().join("audit.jsonl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
    // start + 7 + stop = 9 entries, checkpoints after every 3 and at the end.
    assert_eq!(v.unsigned_tail, 0);
    assert!(v.checkpoints >= 3, "{v:?}");
    assert_eq!(v.entries, text.lines().count() as u64);
}

#[test]
fn every_kind_of_tampering_is_named() {
    let d = tempfile::tempdir().unwrap();
    let (text, copy, public) = written(d.path(), 6, 4);
    let lines: Vec<&str> = text.lines().collect();
    let join = |ls: Vec<&str>| ls.join("\n") + "\n";

    let edited = text.replacen("/admin/x2", "/admin/x9", 1);
    let e = verify(&edited, Some(&public), None).unwrap_err();
    assert!(e.contains("line 4") && e.contains("edited"), "{e}");

    let mut deleted = lines.clone();
    deleted.remove(2);
    let e = verify(&join(deleted), Some(&public), None).unwrap_err();
    assert!(e.contains("line 3") && e.contains("sequence"), "{e}");

    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    let e = verify(&join(swapped), Some(&public), None).unwrap_err();
    assert!(e.contains("line 3"), "{e}");

    let mut inserted = lines.clone();
    inserted.insert(2, lines[1]);
    assert!(verify(&join(inserted), Some(&public), None)
        .unwrap_err()
        .contains("line 3"));

    // A cut tail: the file alone still chains; the checkpoint copy shows the cut.
    let cut = join(lines[..lines.len() - 2].to_vec());
    assert!(verify(&cut, Some(&public), None).is_ok());
    let e = verify(&cut, Some(&public), Some(&copy)).unwrap_err();
    assert!(e.contains("cut"), "{e}");

    // Another key: the checkpoints do not verify.
    let (_, other) = generate_key().unwrap();
    let e = verify(&text, Some(&other), None).unwrap_err();
    assert!(e.contains("signature"), "{e}");
}

#[test]
fn a_restarted_trail_continues_the_chain() {
    let d = tempfile::tempdir().unwrap();
    let (key, public) = generate_key().unwrap();
    drop(AuditTrail::open(settings(d.path(), &key, 100)).unwrap());
    let t = AuditTrail::open(settings(d.path(), &key, 100)).unwrap();
    t.record("admin", Fields::new().str("path", "/after"));
    drop(t);
    let text = std::fs::read_to_string(d.path().join("audit.jsonl")).unwrap();
    let v = verify(&text, Some(&public), None).unwrap();
    assert_eq!(v.unsigned_tail, 0);
    assert!(text.contains("/after"));

    // A torn last line (a crash mid-write) is not written after.
    std::fs::write(d.path().join("audit.jsonl"), format!("{text}{{\"seq\":9")).unwrap();
    let e = AuditTrail::open(settings(d.path(), &key, 100))
        .err()
        .unwrap();
    assert!(e.contains("incomplete"), "{e}");
    // Nor is a trail whose last entry was edited.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let last = lines
        .pop()
        .unwrap()
        .replacen("\"time\":\"2", "\"time\":\"3", 1);
    lines.push(last);
    std::fs::write(d.path().join("audit.jsonl"), lines.join("\n") + "\n").unwrap();
    let e = AuditTrail::open(settings(d.path(), &key, 100))
        .err()
        .unwrap();
    assert!(e.contains("does not verify"), "{e}");
}

#[test]
fn a_full_disk_is_counted_and_reported_not_skipped() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let (key, _) = generate_key().unwrap();
    let t = AuditTrail::open(TrailSettings {
        path: "/dev/full".into(),
        signing_key: key,
        checkpoint_every: 100,
        checkpoint_interval: Duration::from_secs(3600),
        max_events_per_second: 100,
        fsync: Fsync::Never,
        checkpoint_copy: None,
        syslog: None,
    })
    .unwrap();
    assert!(t.is_failing());
    t.record("admin", Fields::new().str("path", "/x"));
    assert!(t.write_errors.load(Ordering::Relaxed) >= 2);
    assert_eq!(t.written.load(Ordering::Relaxed), 0);
    assert_eq!(t.lock().pending.len(), 2, "kept to be written, in order");
}

#[test]
fn a_rotated_trail_goes_on_in_a_new_file_and_verifies_across_both() {
    let d = tempfile::tempdir().unwrap();
    let (key, public) = generate_key().unwrap();
    let path = d.path().join("audit.jsonl");
    let old = d.path().join("audit.jsonl.1");
    let t = AuditTrail::open(settings(d.path(), &key, 100)).unwrap();
    t.record("admin", Fields::new().str("path", "/before"));
    assert!(!t.reopen().unwrap(), "not moved: nothing to do");
    std::fs::rename(&path, &old).unwrap();
    assert!(t.reopen().unwrap());
    t.record("admin", Fields::new().str("path", "/after"));
    drop(t);
    let (a, b) = (
        std::fs::read_to_string(&old).unwrap(),
        std::fs::read_to_string(&path).unwrap(),
    );
    // The old file ends signed; the new one starts with `rotate`, after it.
    assert!(a
        .lines()
        .last()
        .unwrap()
        .contains("\"kind\":\"checkpoint\""));
    assert!(b.lines().next().unwrap().contains("\"kind\":\"rotate\""));
    let copy = std::fs::read_to_string(d.path().join("checkpoints.jsonl")).unwrap();
    let v = verify_files(&[("1", &a), ("0", &b)], Some(&public), Some(&copy), false).unwrap();
    assert_eq!(v.entries, (a.lines().count() + b.lines().count()) as u64);
    // Alone, the new file is missing its beginning, unless told it continues one.
    let e = verify(&b, Some(&public), None).unwrap_err();
    assert!(e.contains("starts at entry"), "{e}");
    let v = verify_files(&[("0", &b)], Some(&public), Some(&copy), true).unwrap();
    assert_eq!(v.starts_at, a.lines().count() as u64);
    // In the wrong order, the chain breaks.
    assert!(verify_files(&[("0", &b), ("1", &a)], Some(&public), None, true).is_err());
}

#[test]
fn a_restart_after_rotation_goes_on_from_the_head_file_and_a_cut_tail_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (key, public) = generate_key().unwrap();
    let path = d.path().join("audit.jsonl");
    drop(AuditTrail::open(settings(d.path(), &key, 100)).unwrap());
    // Rotated while stopped (logrotate's `create`: a new empty file).
    std::fs::rename(&path, d.path().join("audit.jsonl.1")).unwrap();
    std::fs::write(&path, "").unwrap();
    drop(AuditTrail::open(settings(d.path(), &key, 100)).unwrap());
    let a = std::fs::read_to_string(d.path().join("audit.jsonl.1")).unwrap();
    let b = std::fs::read_to_string(&path).unwrap();
    verify_files(&[("1", &a), ("0", &b)], Some(&public), None, false).unwrap();
    // The head file names the last checkpoint: a trail cut before it does not resume.
    let lines: Vec<&str> = b.lines().collect();
    std::fs::write(&path, lines[..lines.len() - 2].join("\n") + "\n").unwrap();
    let e = AuditTrail::open(settings(d.path(), &key, 100))
        .err()
        .unwrap();
    assert!(e.contains("tail was cut"), "{e}");
}
