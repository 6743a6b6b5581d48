//! The writers: a [`Report`] as Markdown (a table per comparison, ratios against the reference row),
//! as JSON, and one SVG bar chart per comparison (plotters, SVG backend only).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::prelude::*;

use super::report::{Comparison, Report, Row};

/// A number with a precision that suits its size (3 significant-ish digits).
pub fn num(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 0.1 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// `row`'s p50 against the reference's: `1.00×` for the reference, `—` when it cannot be formed.
pub fn ratio(reference: &Row, row: &Row) -> String {
    let (r, x) = (reference.stats.p50, row.stats.p50);
    if r == 0.0 || !r.is_finite() || !x.is_finite() {
        return "—".into();
    }
    format!("{:.2}×", x / r)
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The whole report as Markdown: the environment, then per comparison a table (subject, p50, p99/max,
/// mean, samples, ratio to the first row, note) and its skipped subjects.
pub fn markdown(r: &Report) -> String {
    let e = &r.environment;
    let mut s = String::new();
    let _ = writeln!(s, "# berthctl bench\n");
    let _ = writeln!(s, "- cluster: {}", e.cluster);
    let _ = writeln!(s, "- nodes: {}", e.nodes.join(", "));
    let _ = writeln!(s, "- kernel: {}", e.kernel);
    let _ = writeln!(s, "- build: {}", e.build);
    if !e.machine.is_empty() {
        let _ = writeln!(s, "- machine: {}", e.machine);
    }
    let _ = writeln!(s, "- started: {}", e.started);
    for c in &r.comparisons {
        let better = if c.lower_is_better {
            "lower is better"
        } else {
            "higher is better"
        };
        let _ = writeln!(s, "\n## {} ({}, {better})\n", c.title, c.unit);
        if !c.rows.is_empty() {
            let _ = writeln!(
                s,
                "| subject | p50 | p99/max | mean | samples | ratio | note |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|");
            for row in &c.rows {
                let st = &row.stats;
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    cell(&row.subject),
                    num(st.p50),
                    num(st.p99),
                    num(st.mean),
                    st.samples,
                    ratio(&c.rows[0], row),
                    cell(&row.note)
                );
            }
        }
        for sk in &c.skipped {
            let _ = writeln!(s, "\n- skipped: {}", sk.replace('\n', " "));
        }
    }
    s
}

/// The report as pretty JSON.
///
/// # Errors
/// Never in practice (the types serialise).
pub fn json(r: &Report) -> Result<String> {
    Ok(serde_json::to_string_pretty(r)?)
}

/// A file name for a comparison's plot (`startup.svg`), from its id.
pub fn svg_name(c: &Comparison) -> String {
    let id: String =
        c.id.chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '-' {
                    ch
                } else {
                    '_'
                }
            })
            .collect();
    format!("{id}.svg")
}

/// One comparison as an SVG bar chart: a bar per subject at its p50, a whisker from min to p99.
///
/// # Errors
/// When plotters fails to lay out the chart.
pub fn svg(c: &Comparison) -> Result<String> {
    let mut out = String::new();
    {
        let height = 120 + 40 * c.rows.len().max(1) as u32;
        let root = SVGBackend::with_string(&mut out, (900, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let top = c
            .rows
            .iter()
            .map(|r| r.stats.p99.max(r.stats.p50))
            .fold(0.0_f64, f64::max);
        let top = if top > 0.0 && top.is_finite() {
            top * 1.15
        } else {
            1.0
        };
        let n = c.rows.len().max(1);
        let better = if c.lower_is_better {
            "lower is better"
        } else {
            "higher is better"
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{} ({better})", c.title), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(260)
            .build_cartesian_2d(0.0..top, 0.0..n as f64)
            .map_err(plot_err)?;
        let labels: Vec<String> = c.rows.iter().map(|r| r.subject.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(c.unit.as_str())
            .y_labels(n * 2 + 1)
            .y_label_formatter(&|y| {
                // Labels sit at the middle of each bar (i + 0.5); rows are drawn top down.
                let f = *y - 0.5;
                if (f - f.round()).abs() > 1e-6 || f < 0.0 {
                    return String::new();
                }
                let i = n - 1 - f.round() as usize;
                labels.get(i).cloned().unwrap_or_default()
            })
            .draw()
            .map_err(plot_err)?;
        for (i, r) in c.rows.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            let colour = if i == 0 {
                RGBColor(120, 120, 120)
            } else {
                RGBColor(40, 100, 180)
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(0.0, y + 0.2), (r.stats.p50, y + 0.8)],
                    colour.filled(),
                )))
                .map_err(plot_err)?;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(r.stats.min, y + 0.5), (r.stats.p99, y + 0.5)],
                    BLACK.stroke_width(2),
                )))
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(out)
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("failed to draw the plot: {e:?}")
}

/// Writes `report.md`, `report.json` and one SVG per comparison with rows into `dir`; returns the
/// paths written.
///
/// # Errors
/// When `dir` cannot be created or a file cannot be written.
pub fn write_all(dir: &Path, r: &Report) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let mut written = Vec::new();
    let mut put = |name: &str, text: &str| -> Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("failed to write {}", p.display()))?;
        written.push(p);
        Ok(())
    };
    put("report.md", &markdown(r))?;
    put("report.json", &json(r)?)?;
    for c in r.comparisons.iter().filter(|c| !c.rows.is_empty()) {
        put(&svg_name(c), &svg(c)?)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::super::report::{Environment, Stats};
    use super::*;

    fn report() -> Report {
        Report {
            environment: Environment {
                cluster: "https://10.1.2.11:6443".into(),
                nodes: vec!["a1".into(), "a2".into()],
                kernel: "6.1.0".into(),
                build: "0.1.0 debug".into(),
                machine: String::new(),
                started: "2026-01-01T00:00:00Z".into(),
            },
            comparisons: vec![Comparison {
                id: "startup".into(),
                title: "Instance start-up time".into(),
                unit: "ms".into(),
                lower_is_better: true,
                rows: vec![
                    Row {
                        subject: "crun run".into(),
                        stats: Stats::of(&[10.0, 12.0, 11.0]).unwrap(),
                        note: String::new(),
                    },
                    Row {
                        subject: "berth pod | warm".into(),
                        stats: Stats::of(&[30.0, 33.0, 36.0]).unwrap(),
                        note: "a1".into(),
                    },
                ],
                skipped: vec!["berth pod, cold: no".into()],
            }],
        }
    }

    #[test]
    fn markdown_has_a_table_with_ratios_and_the_skipped() {
        let md = markdown(&report());
        assert!(md.contains("- kernel: 6.1.0"), "{md}");
        assert!(md.contains("| subject | p50 | p99/max | mean | samples | ratio | note |"));
        assert!(
            md.contains("| crun run | 11.0 | 12.0 | 11.0 | 3 | 1.00× |  |"),
            "{md}"
        );
        assert!(
            md.contains("| berth pod \\| warm | 33.0 | 36.0 | 33.0 | 3 | 3.00× | a1 |"),
            "{md}"
        );
        assert!(md.contains("- skipped: berth pod, cold: no"));
    }

    #[test]
    fn json_round_trips() {
        let r = report();
        let back: Report = serde_json::from_str(&json(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn svg_is_well_formed_and_files_are_written() {
        let r = report();
        let s = svg(&r.comparisons[0]).unwrap();
        assert!(
            s.starts_with("<svg") && s.trim_end().ends_with("</svg>"),
            "{s}"
        );
        assert!(s.contains("crun run") && s.contains("<rect"));
        let d = tempfile::tempdir().unwrap();
        let files = write_all(d.path(), &r).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["report.md", "report.json", "startup.svg"]);
        assert!(
            std::fs::metadata(d.path().join("startup.svg"))
                .unwrap()
                .len()
                > 100
        );
    }

    #[test]
    fn ratio_without_a_reference_value() {
        let zero = Row {
            subject: "r".into(),
            stats: Stats::default(),
            note: String::new(),
        };
        assert_eq!(ratio(&zero, &zero), "—");
        assert_eq!(num(0.01234), "0.012");
        assert_eq!(num(1234.4), "1234");
    }
}
