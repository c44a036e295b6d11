//! Measures the injection detectors on the labelled corpus `scripts/injection-corpus.py`
//! builds: per source and paranoia level, the share of values a route would refuse on
//! their own (score at or above the default threshold, 5). For attack sources that is the
//! detection rate; for benign sources, the false-positive rate.
//!
//! ```text
//! cargo run --release -p rampart-inspect --example injection_corpus -- DIR [--check] [--show N]
//! ```
//! `--level L` shows misses and false positives at paranoia L instead of 1.
//! `--check` exits non-zero unless, at paranoia 1, every SQLi and XSS source is at least
//! 60% detected and every benign source at most 1% flagged (the targets of
//! docs/threat-protection.md). `--show N` prints up to N misses and false positives per
//! source at paranoia 1.

use std::path::PathBuf;
use std::process::ExitCode;

use rampart_inspect::InjectionDetector;

const THRESHOLD: u32 = 5;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: injection_corpus DIR [--check] [--show N]");
        return ExitCode::from(2);
    };
    let (mut check, mut show, mut show_level) = (false, 0usize, 1usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--check" => check = true,
            "--show" => show = args.next().and_then(|n| n.parse().ok()).unwrap_or(10),
            "--level" => show_level = args.next().and_then(|n| n.parse().ok()).unwrap_or(1),
            other => {
                eprintln!("unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(d) => d
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect(),
        Err(e) => {
            eprintln!("{}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    files.sort();
    let detectors: Vec<InjectionDetector> = (1..=4).map(InjectionDetector::new).collect();
    let mut failed = Vec::new();
    println!("| source | kind | values | paranoia 1 | paranoia 2 | paranoia 3 | paranoia 4 |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for path in files {
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let (kind, source) = name.split_once('-').unwrap_or(("?", &name));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let values: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let attack = kind != "benign";
        let mut rates = Vec::new();
        for (level, d) in detectors.iter().enumerate() {
            let mut hits = 0usize;
            let mut shown = 0usize;
            for v in &values {
                let f = d.scan(v);
                let hit = f.score() >= THRESHOLD;
                hits += usize::from(hit);
                if level + 1 == show_level && shown < show && hit != attack {
                    shown += 1;
                    let rules: Vec<&str> = f.iter().map(|x| x.rule).collect();
                    let what = if attack { "missed" } else { "flagged" };
                    println!(
                        "  {what} [{source}] {rules:?} {}",
                        v.chars().take(160).collect::<String>()
                    );
                }
            }
            rates.push(100.0 * hits as f64 / values.len().max(1) as f64);
        }
        let label = if attack { "detected" } else { "flagged" };
        println!(
            "| {source} | {kind} ({label}) | {} | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
            values.len(),
            rates[0],
            rates[1],
            rates[2],
            rates[3]
        );
        let ok = if attack {
            rates[0] >= 60.0
        } else {
            rates[0] <= 1.0
        };
        if !ok && (kind == "sqli" || kind == "xss" || kind == "benign") {
            failed.push(format!("{name}: {:.1}% at paranoia 1", rates[0]));
        }
    }
    if check && !failed.is_empty() {
        eprintln!("injection corpus targets missed: {}", failed.join("; "));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
