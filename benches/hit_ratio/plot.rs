//! SVG charts of hit ratio against cache size: one line per policy, OPT
//! dashed.

use std::path::Path;

use plotters::prelude::*;

const COLORS: [RGBColor; 6] = [
    RGBColor(120, 120, 120), // LRU
    RGBColor(0, 0, 0),       // OPT
    RGBColor(190, 190, 190), // OPTb
    RGBColor(214, 39, 40),   // tenant-cache
    RGBColor(31, 119, 180),  // quick_cache
    RGBColor(44, 160, 44),   // moka
];

pub fn chart(
    file: &Path,
    title: &str,
    sizes: &[usize],
    ratios: &[[f64; 6]],
    names: &[&str; 6],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(file, (720, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = ratios
        .iter()
        .flat_map(|r| r.iter().copied())
        .fold(0.0f64, f64::max)
        .min(100.0);
    let x_max = sizes.len().saturating_sub(1).max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{title}: hit ratio by cache size"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(-0.1f64..x_max + 0.1, 0f64..(top + 5.0).min(100.0))?;
    // Sizes are far apart (20 to 100 000): place them evenly, label them.
    let label = |x: &f64| {
        let i = x.round() as usize;
        if (x - i as f64).abs() < 1e-6 && i < sizes.len() {
            sizes[i].to_string()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_labels(sizes.len())
        .x_label_formatter(&label)
        .x_desc("cache size (entries)")
        .y_desc("hit ratio (%)")
        .draw()?;
    for (p, name) in names.iter().enumerate() {
        let color = COLORS[p];
        let points: Vec<(f64, f64)> = ratios
            .iter()
            .enumerate()
            .map(|(i, r)| (i as f64, r[p]))
            .collect();
        let width = match *name {
            "tenant-cache" => 3,
            "OPTb" => 1,
            _ => 2,
        };
        let style = ShapeStyle::from(&color).stroke_width(width);
        let series = if *name == "OPT" {
            chart.draw_series(DashedLineSeries::new(points.clone(), 6, 4, style))?
        } else {
            chart.draw_series(LineSeries::new(points.clone(), style))?
        };
        series.label(*name).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
        });
        chart.draw_series(points.iter().map(|&pt| Circle::new(pt, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
