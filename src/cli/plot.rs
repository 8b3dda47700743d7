//! `--plot FILE.svg` (issue 16 part 4): pictures of the reports `powkit bench` and `powkit validate`
//! already build, drawn with `plotters`' SVG backend (text as SVG `<text>` elements, so no font
//! files or font rendering are needed). The library runs, the command builds its report, and this
//! module draws that report: it measures nothing itself.

use std::path::Path;
use std::time::Duration;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{fmt_rate, CliError};
use crate::mine::bench::BenchReport;
use crate::validate::{Progress, ValidateReport};

/// Width of every picture, pixels.
const WIDTH: u32 = 960;
/// Height of one chart panel, pixels.
const PANEL_HEIGHT: u32 = 480;
/// Bar colour.
const BAR: RGBColor = RGBColor(0x3b, 0x75, 0xaf);

/// The CPU's model name from /proc/cpuinfo (Linux), `None` elsewhere or when it has none.
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|v| !v.is_empty())
}

/// The label of one bench row as the picture shows it under its bar: `cpu shani, 2 threads`, or
/// `gpu wgsl` for a GPU row (whose thread count means nothing to a reader).
pub fn bench_row_label(backend: &str, imp: &str, threads: usize) -> String {
    if backend == "gpu" {
        format!("{backend} {imp}")
    } else {
        format!("{backend} {imp}, {threads} thread{}", if threads == 1 { "" } else { "s" })
    }
}

/// Writes `svg` to `path`.
///
/// # Errors
/// The file cannot be created or written: exit code 2, naming the path and the OS's reason.
pub fn write(path: &Path, svg: &str) -> Result<(), CliError> {
    std::fs::write(path, svg).map_err(|e| CliError::usage(format!("--plot {}: cannot write: {e}", path.display())))
}

/// One bar chart panel: `bars` are (label, rate per second) in order; the y axis is `unit` per
/// second from 0, with the rate printed above each bar in `fmt` form.
fn bar_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    bars: &[(String, f64)],
    fmt: &dyn Fn(f64) -> String,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let n = bars.len().max(1);
    // One segment per bar: an integer range is inclusive, so 0..=last holds n segments; the last
    // bar ends at the axis's end (`Last`).
    let last = n as u32 - 1;
    let top = bars.iter().map(|b| b.1).fold(0.0_f64, f64::max);
    let top = if top > 0.0 && top.is_finite() { top * 1.15 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(96)
        .build_cartesian_2d((0..last).into_segmented(), 0.0..top)
        .map_err(e)?;
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_max_light_lines(1)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|v| fmt(*v))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(e)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let i = i as u32;
            let right = if i < last { SegmentValue::Exact(i + 1) } else { SegmentValue::Last };
            let mut r = Rectangle::new([(SegmentValue::Exact(i), 0.0), (right, b.1)], BAR.filled());
            r.set_margin(0, 0, 12, 12);
            r
        }))
        .map_err(e)?;
    let above = TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    chart
        .draw_series(
            bars.iter()
                .enumerate()
                .map(|(i, b)| Text::new(fmt(b.1), (SegmentValue::CenterOf(i as u32), b.1), above.clone())),
        )
        .map_err(e)?;
    Ok(())
}

/// `powkit bench --plot`: an SVG (WIDTH x 480 pixels, or x 960 with signature rows) with one bar
/// per hash row of `report.results` (hashes/s, labelled backend, implementation and threads) and,
/// when `report.signatures` has rows, a second panel with one bar per verifier (signatures/s).
/// The title names the CPU model (when /proc/cpuinfo gives it) and the GPU adapters of the rows.
///
/// # Errors
/// plotters failed to lay out the picture (a message; never expected for finite rates).
pub fn bench_svg(report: &BenchReport) -> Result<String, String> {
    let mut machine = vec![cpu_model().unwrap_or_else(|| format!("{} hardware threads", report.hardware_threads))];
    for a in report.results.iter().filter_map(|r| r.adapter.as_deref()) {
        if !machine.iter().any(|m| m == a) {
            machine.push(a.to_string());
        }
    }
    let title = format!("powkit bench: {}", machine.join(" + "));
    let hashes: Vec<(String, f64)> = report
        .results
        .iter()
        .map(|r| (bench_row_label(r.backend.name(), &r.imp, r.threads), r.hashes_per_second))
        .collect();
    let sigs: Vec<(String, f64)> =
        report.signatures.iter().map(|r| (r.verifier.clone(), r.signatures_per_second)).collect();
    let panels = if sigs.is_empty() { 1 } else { 2 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, PANEL_HEIGHT * panels)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root.titled(&title, ("sans-serif", 20)).map_err(|e| e.to_string())?;
        let areas = root.split_evenly((panels as usize, 1));
        bar_panel(
            &areas[0],
            "SHA-256d nonce search: rate per backend, implementation and thread count",
            "backend, implementation, threads",
            "rate (hashes per second, H/s)",
            &hashes,
            &fmt_rate,
        )?;
        if !sigs.is_empty() {
            bar_panel(
                &areas[1],
                "Ed25519 (ZIP-215) signature verification: rate per verifier",
                "verifier",
                "rate (signatures per second)",
                &sigs,
                &|v| format!("{}/s", fmt_rate(v).trim_end_matches("H/s").trim_end()),
            )?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// One progress sample: (elapsed s, headers, blocks, transactions), counts cumulative.
type Sample = (f64, u64, u64, u64);

/// One stage: (legend name, its count in a sample, colour).
type Stage = (&'static str, fn(&Sample) -> u64, RGBColor);

/// One stage's line: (legend name, colour, (elapsed s, rate per second) points).
type StageLine = (&'static str, RGBColor, Vec<(f64, f64)>);

/// Counts of `powkit validate` as its progress callbacks report them, for the rate-over-the-run
/// picture: cumulative headers, blocks and transactions at seconds since the start.
#[derive(Debug, Clone, Default)]
pub struct ValidateTrace {
    /// (elapsed s, headers, blocks, transactions), in callback order; starts with the run's start
    /// (0 s, all 0).
    samples: Vec<Sample>,
    /// `Progress::Done`'s elapsed time, once seen.
    done: Option<Duration>,
}

impl ValidateTrace {
    /// An empty trace: one sample at 0 s with every count 0.
    pub fn new() -> ValidateTrace {
        ValidateTrace { samples: vec![(0.0, 0, 0, 0)], done: None }
    }

    /// Records one progress callback. A powkit chain's tip height `h` counts as `h + 1` blocks
    /// (genesis included); its headers are not counted separately.
    pub fn record(&mut self, p: Progress) {
        match p {
            Progress::Bitcoin { headers, blocks, elapsed } => {
                self.samples.push((elapsed.as_secs_f64(), headers, blocks, 0));
            }
            Progress::Powkit { height, transactions, elapsed } => {
                self.samples.push((elapsed.as_secs_f64(), 0, u64::from(height) + 1, transactions));
            }
            Progress::Done { elapsed } => self.done = Some(elapsed),
        }
    }

    /// The samples with the final counts of `report` appended at Done's time (the report's
    /// `seconds` if Done never came), so even a run shorter than one progress interval has a start
    /// and an end.
    fn finished(&self, report: &ValidateReport) -> Vec<Sample> {
        let mut s = self.samples.clone();
        let end = self.done.map_or(report.seconds, |d| d.as_secs_f64());
        let last_t = s.last().map_or(0.0, |l| l.0);
        let st = &report.stats;
        s.push((end.max(last_t), st.headers, st.blocks, st.transactions));
        s
    }
}

/// `powkit validate --plot`: an SVG (WIDTH x 480 pixels) of the rate over the run, one line per
/// stage that counted anything (headers/s, blocks/s, transactions/s) against elapsed seconds.
/// Each interval between two progress callbacks (the start, the ~2 s reports, Done) is drawn as a
/// flat step at that interval's rate (count difference / time difference), so a run shorter than
/// one report interval still has two points: the start and Done, at the whole run's rate.
///
/// # Errors
/// plotters failed to lay out the picture (a message; never expected for finite rates).
pub fn validate_svg(trace: &ValidateTrace, report: &ValidateReport) -> Result<String, String> {
    let samples = trace.finished(report);
    let stages: [Stage; 3] = [
        ("headers/s", |s| s.1, RGBColor(0x3b, 0x75, 0xaf)),
        ("blocks/s", |s| s.2, RGBColor(0xef, 0x85, 0x36)),
        ("transactions/s", |s| s.3, RGBColor(0x51, 0x9e, 0x3e)),
    ];
    let mut lines: Vec<StageLine> = Vec::new();
    for (name, count, colour) in stages {
        if samples.last().map_or(0, count) == 0 {
            continue;
        }
        let mut points = Vec::new();
        for w in samples.windows(2) {
            let dt = w[1].0 - w[0].0;
            if dt > 0.0 {
                let rate = count(&w[1]).saturating_sub(count(&w[0])) as f64 / dt;
                points.push((w[0].0, rate));
                points.push((w[1].0, rate));
            }
        }
        lines.push((name, colour, points));
    }
    let t_end = samples.last().map_or(0.0, |s| s.0);
    let t_end = if t_end > 0.0 { t_end } else { 1.0 };
    let top = lines.iter().flat_map(|l| l.2.iter().map(|p| p.1)).fold(0.0_f64, f64::max);
    let top = if top > 0.0 && top.is_finite() { top * 1.15 } else { 1.0 };
    let title = format!(
        "powkit validate: {}, hashing on {}{}",
        report.chain,
        report.backend,
        cpu_model().map(|m| format!(" ({m})")).unwrap_or_default()
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, PANEL_HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(96)
            .build_cartesian_2d(0.0..t_end, 0.0..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .max_light_lines(1)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .x_desc("elapsed (seconds)")
            .y_desc("rate (per second)")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(|e| e.to_string())?;
        for (name, colour, points) in &lines {
            chart
                .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled()))).map_err(|e| e.to_string())?;
        }
        if !lines.is_empty() {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}
