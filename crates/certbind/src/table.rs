//! Human output for the CLI: aligned tables for lists, `key: value` lines for objects.

use serde_json::Value;

/// A column: its header and where its value sits in each item (a JSON pointer).
pub type Column = (&'static str, &'static str);

pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

pub fn print_table(items: &[Value], columns: &[Column]) {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| columns.iter().map(|(_, ptr)| cell(item.pointer(ptr).unwrap_or(&Value::Null))).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (header, _))| rows.iter().map(|r| r[i].chars().count()).chain([header.len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(columns.iter().map(|(h, _)| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

pub fn print_object(value: &Value) {
    match value {
        Value::Object(map) => {
            let width = map.keys().map(|k| k.len()).max().unwrap_or(0);
            for (key, v) in map {
                match v {
                    Value::Object(_) => println!("{key:<width$}  {}", v),
                    Value::Array(items) if items.iter().any(|i| i.is_object()) => {
                        println!("{key:<width$}  ({} item(s))", items.len())
                    }
                    _ => println!("{key:<width$}  {}", cell(v)),
                }
            }
        }
        other => println!("{}", cell(other)),
    }
}
