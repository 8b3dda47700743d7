//! `powkit bench --plot` and `powkit validate --plot` (issue 16 part 4) end to end: the SVG is
//! well-formed, has a bar and a label per bench row and a line of at least two points per
//! validate stage, and an unwritable path is exit 2 with a clear message after the normal output.

mod common;

use common::{powkit, tmp_dir};

/// Checks `svg` is one well-formed `<svg>` element: every tag closed in order, attributes quoted.
/// Returns the text content of every `<text>` element, trimmed.
fn well_formed(svg: &str) -> Vec<String> {
    let svg = svg.trim();
    assert!(svg.starts_with("<svg"), "does not start with <svg: {}", &svg[..svg.len().min(80)]);
    assert!(svg.ends_with("</svg>"), "does not end with </svg>");
    let mut open: Vec<&str> = Vec::new();
    let mut texts = Vec::new();
    let mut rest = svg;
    while let Some(lt) = rest.find('<') {
        let content = &rest[..lt];
        if open.last() == Some(&"text") {
            texts.push(content.trim().to_string());
        }
        assert!(!content.contains('>'), "stray '>' in text: {content:?}");
        let gt = rest[lt..].find('>').expect("unclosed tag") + lt;
        let tag = &rest[lt + 1..gt];
        assert!(tag.matches('"').count().is_multiple_of(2), "unbalanced quotes in <{tag}>");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name.trim()), "</{name}> closes the wrong element");
        } else if !tag.ends_with('/') {
            open.push(tag.split_whitespace().next().expect("tag name"));
        }
        if open.is_empty() {
            assert_eq!(rest[gt + 1..].trim(), "", "content after </svg>");
        }
        rest = &rest[gt + 1..];
    }
    assert!(open.is_empty(), "unclosed elements: {open:?}");
    texts
}

/// The bars: `<rect>`s filled with the bar colour, as (height in pixels).
fn bar_heights(svg: &str) -> Vec<f64> {
    svg.lines()
        .filter(|l| l.starts_with("<rect") && l.contains("fill=\"#3B75AF\""))
        .map(|l| {
            let h = l.split("height=\"").nth(1).and_then(|s| s.split('"').next()).expect("height");
            h.parse().expect("numeric height")
        })
        .collect()
}

#[test]
fn bench_plot_has_a_bar_and_a_label_per_row() {
    let d = tmp_dir("plot", "bench");
    let f = d.join("bench.svg");
    let out = powkit(&[
        "bench",
        "--backend",
        "cpu",
        "--seconds",
        "0.3",
        "--threads",
        "1,2",
        "--json",
        "--plot",
        f.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bench JSON");
    let rows = report["results"].as_array().expect("results");
    assert_eq!(rows.len(), 2, "one row per thread count: {report}");
    let svg = std::fs::read_to_string(&f).expect("the SVG was written");
    let texts = well_formed(&svg);
    let bars = bar_heights(&svg);
    assert_eq!(bars.len(), rows.len(), "a bar per row");
    for (row, h) in rows.iter().zip(&bars) {
        assert!(*h > 0.0, "an empty bar for {row}");
        let threads = row["threads"].as_u64().unwrap();
        let label =
            format!("cpu {}, {threads} thread{}", row["impl"].as_str().unwrap(), if threads == 1 { "" } else { "s" });
        assert!(texts.contains(&label), "no <text> {label:?} in {texts:?}");
    }
    // Taller bar for the faster row (heights are rates on one linear axis from 0).
    let rates: Vec<f64> = rows.iter().map(|r| r["hashes_per_second"].as_f64().unwrap()).collect();
    assert_eq!(rates[0] < rates[1], bars[0] < bars[1], "bars {bars:?} vs rates {rates:?}");
    assert!(texts.iter().any(|t| t.contains("H/s")), "the axis has units: {texts:?}");
    assert!(texts.iter().any(|t| t.starts_with("powkit bench")), "a title: {texts:?}");
}

#[test]
fn bench_plot_with_sigs_has_a_second_panel() {
    let d = tmp_dir("plot", "sigs");
    let f = d.join("bench.svg");
    let out = powkit(&[
        "bench",
        "--backend",
        "cpu",
        "--seconds",
        "0.1",
        "--threads",
        "1",
        "--sigs",
        "200",
        "--plot",
        f.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(&f).unwrap();
    let texts = well_formed(&svg);
    assert_eq!(bar_heights(&svg).len(), 2, "one hash bar and one signature bar");
    assert!(texts.iter().any(|t| t.starts_with("cpu (")), "the verifier's label: {texts:?}");
    assert!(texts.iter().any(|t| t.contains("signatures per second")), "{texts:?}");
}

#[test]
fn an_unwritable_plot_path_is_exit_2_after_the_normal_output() {
    let f = "/nonexistent-powkit-dir/bench.svg";
    let out = powkit(&["bench", "--backend", "cpu", "--seconds", "0.1", "--threads", "1", "--plot", f]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("backend") && stdout.contains("H/s"), "the table is still printed: {stdout}");
    assert!(stderr.contains(&format!("--plot {f}: cannot write")), "clear message: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let d = tmp_dir("plot", "unwritable");
    let h = d.join("h.dat");
    let out =
        powkit(&["chain", "generate", "--chain", "bitcoin-regtest", "--headers", "100", "--out", h.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = powkit(&[
        "validate",
        "--chain",
        "bitcoin-regtest",
        "--format",
        "headers",
        "--no-pow",
        "--plot",
        f,
        h.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"), "the report is still printed");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("--plot {f}: cannot write")));
}

#[test]
fn validate_plot_has_a_rate_line_of_at_least_two_points() {
    let d = tmp_dir("plot", "validate");
    let h = d.join("h.dat");
    let g = d.join("validate.svg");
    let out =
        powkit(&["chain", "generate", "--chain", "bitcoin-regtest", "--headers", "2000", "--out", h.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = powkit(&[
        "validate",
        "--chain",
        "bitcoin-regtest",
        "--format",
        "headers",
        "--no-pow",
        "--plot",
        g.to_str().unwrap(),
        h.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(&g).expect("the SVG was written");
    let texts = well_formed(&svg);
    assert!(texts.contains(&"headers/s".to_string()), "the stage's legend: {texts:?}");
    assert!(texts.iter().any(|t| t.contains("elapsed (seconds)")), "{texts:?}");
    // Headers only: no blocks or transactions counted, so only the headers line.
    assert!(!texts.contains(&"blocks/s".to_string()), "{texts:?}");
    // The data line (2 px wide, the headers colour) spans the run: at least two points, more than
    // 100 px apart (the legend's 20 px sample does not count).
    let spans: Vec<(usize, f64)> = svg
        .lines()
        .filter(|l| l.starts_with("<polyline") && l.contains("stroke=\"#3B75AF\" stroke-width=\"2\""))
        .map(|l| {
            let xs: Vec<f64> = l
                .split("points=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .split_whitespace()
                .map(|p| p.split(',').next().unwrap().parse().unwrap())
                .collect();
            (xs.len(), xs.iter().cloned().fold(f64::MIN, f64::max) - xs.iter().cloned().fold(f64::MAX, f64::min))
        })
        .collect();
    assert!(spans.iter().any(|&(n, w)| n >= 2 && w > 100.0), "no headers/s line across the run: {spans:?}");
    assert!(svg.matches("<circle").count() >= 2, "a marker per point");
}
