//! The one writer of the Prometheus text format (exposition format 0.0.4). Every crate
//! that exposes series writes them through this, so the escaping, the `# HELP`/`# TYPE`
//! lines and the histogram layout are written once.

use std::fmt::Write as _;

/// A `/metrics` page being written.
#[derive(Debug, Default)]
pub struct MetricsText {
    out: String,
}

/// Label pairs of one sample.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

impl MetricsText {
    pub fn new() -> MetricsText {
        MetricsText {
            out: String::with_capacity(16 * 1024),
        }
    }

    /// Starts a metric family: its help text and type (`counter`, `gauge`, `histogram`).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample with integer value.
    pub fn sample(&mut self, name: &str, labels: Labels<'_>, value: u64) {
        self.head(name, labels);
        let _ = writeln!(self.out, " {value}");
    }

    /// One sample with a float value.
    pub fn sample_f64(&mut self, name: &str, labels: Labels<'_>, value: f64) {
        self.head(name, labels);
        let _ = writeln!(self.out, " {value}");
    }

    /// A whole histogram's samples: per-bucket counts (not cumulative) for the upper
    /// bounds `bounds`, the total count and the sum.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: Labels<'_>,
        bounds: &[f64],
        counts: &[u64],
        count: u64,
        sum: f64,
    ) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (ub, c) in bounds.iter().zip(counts) {
            cumulative += c;
            let le = ub.to_string();
            let mut l: Vec<(&str, &str)> = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, cumulative);
        }
        let mut l: Vec<(&str, &str)> = labels.to_vec();
        l.push(("le", "+Inf"));
        self.sample(&bucket, &l, count);
        self.sample_f64(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count);
    }

    fn head(&mut self, name: &str, labels: Labels<'_>) {
        self.out.push_str(name);
        if labels.is_empty() {
            return;
        }
        self.out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(k);
            self.out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    /// The page written so far.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values_and_accumulates_buckets() {
        let mut m = MetricsText::new();
        m.family("x_total", "counter", "X.");
        m.sample("x_total", &[("route", "a\"b\\c\nd")], 3);
        m.histogram("h", &[("r", "a")], &[0.1, 1.0], &[2, 3], 6, 1.5);
        let s = m.finish();
        assert!(s.contains("# TYPE x_total counter\n"));
        assert!(s.contains(r#"x_total{route="a\"b\\c\nd"} 3"#), "{s}");
        assert!(s.contains(r#"h_bucket{r="a",le="0.1"} 2"#));
        assert!(s.contains(r#"h_bucket{r="a",le="1"} 5"#));
        assert!(s.contains(r#"h_bucket{r="a",le="+Inf"} 6"#));
        assert!(s.contains(r#"h_sum{r="a"} 1.5"#));
    }
}
