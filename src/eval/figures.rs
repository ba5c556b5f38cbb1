//! Pictures of an [`EvalReport`] for people: the confusion matrix and the reliability
//! (calibration) diagram as SVG (plotters' SVG backend: no font files or system libraries),
//! and a small self-contained HTML page that shows them with the headline figures.
//! Pure: strings in, strings out; the CLI writes the files.

use std::fmt::Write;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::EvalReport;

#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    /// A bug: plotters refused what we drew (a backend error on an in-memory string).
    #[error("drawing the {figure} failed: {message}")]
    Draw {
        figure: &'static str,
        message: String,
    },
}

impl FigureError {
    fn draw(figure: &'static str) -> impl Fn(String) -> Self {
        move |message| Self::Draw { figure, message }
    }
}

/// Pixels per confusion-matrix cell, and the margins for the bucket names.
const CELL: i32 = 44;
const LABELS: i32 = 150;

/// The confusion matrix: rows are labels, columns predictions, each cell's count written in
/// it and its shade the row's share (recall on the diagonal).
pub fn confusion_svg(report: &EvalReport) -> Result<String, FigureError> {
    let err = FigureError::draw("confusion matrix");
    let mut labels: Vec<&String> = report.confusion.keys().collect();
    for predicted in report.confusion.values().flat_map(|row| row.keys()) {
        if !labels.contains(&predicted) {
            labels.push(predicted);
        }
    }
    labels.sort();
    let n = i32::try_from(labels.len()).unwrap_or(i32::MAX).max(1);
    let side = LABELS + n * CELL + 20;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (side as u32, side as u32 + 30)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let title = format!(
            "Confusion matrix: {} ({} rows; rows = label, columns = prediction)",
            report.scorer.name(),
            report.n
        );
        root.draw(&Text::new(title, (10, 8), ("sans-serif", 15).into_font()))
            .map_err(|e| err(e.to_string()))?;
        let name_style = ("sans-serif", 12).into_font();
        let top = LABELS + 30;
        for (i, label) in labels.iter().enumerate() {
            let at = i32::try_from(i).unwrap_or(0) * CELL + CELL / 2;
            let row_name = name_style
                .clone()
                .color(&BLACK)
                .pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(
                label.to_string(),
                (LABELS - 6, top + at),
                row_name,
            ))
            .map_err(|e| err(e.to_string()))?;
            let column_name = name_style
                .clone()
                .transform(FontTransform::Rotate270)
                .color(&BLACK)
                .pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(
                label.to_string(),
                (LABELS + at, top - 6),
                column_name,
            ))
            .map_err(|e| err(e.to_string()))?;
        }
        for (r, gold) in labels.iter().enumerate() {
            let row = report.confusion.get(*gold);
            let total: usize = row.map_or(0, |row| row.values().sum());
            for (c, predicted) in labels.iter().enumerate() {
                let count = row
                    .and_then(|row| row.get(*predicted))
                    .copied()
                    .unwrap_or(0);
                let share = if total == 0 {
                    0.0
                } else {
                    count as f64 / total as f64
                };
                let (x, y) = (
                    LABELS + i32::try_from(c).unwrap_or(0) * CELL,
                    top + i32::try_from(r).unwrap_or(0) * CELL,
                );
                let fill = if r == c {
                    shade(share, (33, 102, 172))
                } else {
                    shade(share, (203, 24, 29))
                };
                root.draw(&Rectangle::new(
                    [(x, y), (x + CELL, y + CELL)],
                    fill.filled(),
                ))
                .map_err(|e| err(e.to_string()))?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + CELL, y + CELL)],
                    RGBColor(220, 220, 220),
                ))
                .map_err(|e| err(e.to_string()))?;
                if count > 0 {
                    let ink = if share > 0.55 { WHITE } else { BLACK };
                    let style = ("sans-serif", 12)
                        .into_font()
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center));
                    root.draw(&Text::new(
                        count.to_string(),
                        (x + CELL / 2, y + CELL / 2),
                        style,
                    ))
                    .map_err(|e| err(e.to_string()))?;
                }
            }
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(svg)
}

/// White at 0, `full` at 1.
fn shade(share: f64, full: (u8, u8, u8)) -> RGBColor {
    let mix = |c: u8| (255.0 - (255.0 - f64::from(c)) * share.clamp(0.0, 1.0)).round() as u8;
    RGBColor(mix(full.0), mix(full.1), mix(full.2))
}

/// The reliability diagram: per confidence bin, the accuracy (bars) against the diagonal of
/// perfect calibration, with the mean confidence marked and the bin's rows written above.
pub fn reliability_svg(report: &EvalReport) -> Result<String, FigureError> {
    let err = FigureError::draw("reliability diagram");
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let caption = format!(
            "Reliability: {} (ECE {:.3}, {} rows)",
            report.scorer.name(),
            report.ece,
            report.n
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("confidence")
            .y_desc("accuracy")
            .x_labels(11)
            .y_labels(11)
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(report.reliability.iter().map(|b| {
                Rectangle::new(
                    [(b.lo + 0.005, 0.0), (b.hi - 0.005, b.accuracy)],
                    RGBColor(74, 123, 208).mix(0.8).filled(),
                )
            }))
            .map_err(|e| err(e.to_string()))?
            .label("accuracy in the bin")
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 12, y + 5)],
                    RGBColor(74, 123, 208).filled(),
                )
            });
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| err(e.to_string()))?
            .label("perfect calibration")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], BLACK));
        chart
            .draw_series(
                report
                    .reliability
                    .iter()
                    .map(|b| Circle::new((b.mean_confidence, b.accuracy), 3, RED.filled())),
            )
            .map_err(|e| err(e.to_string()))?
            .label("mean confidence")
            .legend(|(x, y)| Circle::new((x + 6, y), 3, RED.filled()));
        chart
            .draw_series(report.reliability.iter().map(|b| {
                let style = ("sans-serif", 10)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom));
                Text::new(
                    b.count.to_string(),
                    ((b.lo + b.hi) / 2.0, (b.accuracy + 0.01).min(0.99)),
                    style,
                )
            }))
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    Ok(svg)
}

/// A self-contained page showing the pictures (files beside it) with the headline figures.
pub fn index_html(report: &EvalReport, confusion_file: &str, reliability_file: &str) -> String {
    let mut rows = String::new();
    for (bucket, m) in &report.per_bucket {
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>",
            escape(bucket),
            m.precision,
            m.recall,
            m.f1,
            m.support
        );
    }
    let oos = report.oos.as_ref().map(|o| o.auroc).map_or_else(
        || "n/a (no out-of-scope rows)".to_owned(),
        |a| format!("{a:.3}"),
    );
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>router eval: {scorer}</title>
<style>body{{font:14px/1.4 system-ui,sans-serif;margin:1.5rem 2rem;color:#1d1d1f}}td,th{{padding:.1rem .8rem .1rem 0;text-align:left}}img{{max-width:100%;border:1px solid #ddd;margin:.5rem 0}}</style>
</head><body>
<h1>router eval: {scorer}</h1>
<table id="figures">
<tr><th>accuracy</th><td id="accuracy">{accuracy:.4}</td></tr>
<tr><th>macro-F1</th><td id="macro_f1">{macro_f1:.4}</td></tr>
<tr><th>ECE</th><td id="ece">{ece:.4}</td></tr>
<tr><th>rows in scope</th><td id="n">{n}</td></tr>
<tr><th>rows out of scope</th><td>{n_oos}</td></tr>
<tr><th>out-of-scope AUROC</th><td>{oos}</td></tr>
<tr><th>latency p50 / p99 (ms)</th><td>{p50:.2} / {p99:.2}</td></tr>
</table>
<h2>Confusion matrix</h2>
<img src="{confusion_file}" alt="confusion matrix">
<h2>Reliability diagram</h2>
<img src="{reliability_file}" alt="reliability diagram">
<h2>Per bucket</h2>
<table><tr><th>bucket</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>
{rows}</table>
<p>The numbers are in report.json beside this page.</p>
</body></html>
"#,
        scorer = report.scorer.name(),
        accuracy = report.accuracy,
        macro_f1 = report.macro_f1,
        ece = report.ece,
        n = report.n,
        n_oos = report.n_out_of_scope,
        p50 = report.latency_ms.p50,
        p99 = report.latency_ms.p99,
    )
}

/// Bucket names come from data files: escape them for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{reliability_bins, score, Percentiles};
    use crate::types::ScorerKind;

    fn report() -> EvalReport {
        let pairs: Vec<(String, String)> = [("a", "a"), ("a", "b"), ("b", "b"), ("c<", "b")]
            .iter()
            .map(|(g, p)| (g.to_string(), p.to_string()))
            .collect();
        let mut r = score(ScorerKind::Combined, &pairs, 0, Percentiles::default());
        r.reliability = reliability_bins(&[(0.95, true), (0.55, false), (0.6, true)], 10);
        r
    }

    #[test]
    fn figures_are_svg_with_their_contents() {
        let r = report();
        let confusion = confusion_svg(&r).unwrap();
        assert!(confusion.starts_with("<svg") && confusion.trim_end().ends_with("</svg>"));
        assert!(
            confusion.contains("c&lt;"),
            "labels are escaped by the backend"
        );
        assert!(confusion.matches("<rect").count() >= 9 * 2);
        let reliability = reliability_svg(&r).unwrap();
        assert!(reliability.starts_with("<svg") && reliability.contains("perfect calibration"));
        let html = index_html(&r, "confusion.svg", "reliability.svg");
        assert!(html.contains(r#"<img src="confusion.svg""#) && html.contains("c&lt;"));
        assert!(html.contains(r#"<td id="accuracy">0.5000</td>"#), "{html}");
    }
}
