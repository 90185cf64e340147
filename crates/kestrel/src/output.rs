//! Printing query results and alerts: a table for people, JSON and CSV for programs.

use std::io::Write;

use anyhow::Result;
use comfy_table::{presets, Table};
use serde_json::{Map, Value};

use crate::cli::Format;

/// Longest cell shown in table output; JSON and CSV are never cut.
const MAX_CELL_CHARS: usize = 80;

fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn cut(s: String) -> String {
    if s.chars().count() <= MAX_CELL_CHARS {
        return s;
    }
    let mut t: String = s.chars().take(MAX_CELL_CHARS - 1).collect();
    t.push('…');
    t
}

/// Writes rows under `columns` in `format`.
pub fn print_rows(
    out: &mut impl Write,
    columns: &[String],
    rows: &[Vec<Value>],
    format: Format,
) -> Result<()> {
    match format {
        Format::Table => {
            let mut table = Table::new();
            table.load_preset(presets::ASCII_BORDERS_ONLY_CONDENSED);
            table.set_header(columns);
            for row in rows {
                table.add_row(row.iter().map(|v| cut(cell_text(v))));
            }
            writeln!(out, "{table}")?;
            writeln!(
                out,
                "({} row{})",
                rows.len(),
                if rows.len() == 1 { "" } else { "s" }
            )?;
        }
        Format::Json => {
            let objects: Vec<Value> = rows
                .iter()
                .map(|row| {
                    let mut m = Map::new();
                    for (c, v) in columns.iter().zip(row) {
                        m.insert(c.clone(), v.clone());
                    }
                    Value::Object(m)
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &objects)?;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(columns)?;
            for row in rows {
                w.write_record(row.iter().map(cell_text))?;
            }
            w.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_render_every_row() {
        let cols = vec!["verb".to_string(), "n".to_string()];
        let rows = vec![
            vec![json!("get"), json!(3)],
            vec![json!("list, all"), Value::Null],
        ];
        let mut out = Vec::new();
        print_rows(&mut out, &cols, &rows, Format::Csv).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "verb,n\nget,3\n\"list, all\",\n"
        );
        let mut out = Vec::new();
        print_rows(&mut out, &cols, &rows, Format::Json).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["verb"], "get");
        assert_eq!(v[1]["n"], Value::Null);
        let mut out = Vec::new();
        print_rows(&mut out, &cols, &rows, Format::Table).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("list, all") && text.contains("(2 rows)"));
    }
}
