//! `wharf catalog`: the catalogs services export ([`App::catalog_json`](wharf::App::catalog_json))
//! merged into one table or JSON array: who owns each consumer, what it reads, where its
//! dead letters go, how it retries. A consumer name found in more than one catalog is
//! reported: two services claiming one consumer is a question for their owners.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::exit::Failure;
use crate::letter::cut;

/// The merged catalog: every entry of every file, each with `catalog` (the file it came
/// from) added, in file order.
pub fn merge(files: &[(String, String)]) -> Result<Vec<Value>, Failure> {
    let mut merged = Vec::new();
    for (path, text) in files {
        let entries: Vec<Value> = serde_json::from_str(text).map_err(|e| {
            Failure::Usage(format!(
                "{path}: not a wharf catalog (a JSON array from App::catalog_json): {e}"
            ))
        })?;
        for mut entry in entries {
            let Value::Object(fields) = &mut entry else {
                return Err(Failure::Usage(format!(
                    "{path}: an entry is not a JSON object"
                )));
            };
            if !fields.get("name").is_some_and(Value::is_string) {
                return Err(Failure::Usage(format!("{path}: an entry has no `name`")));
            }
            fields.insert("catalog".to_owned(), Value::String(path.clone()));
            merged.push(entry);
        }
    }
    Ok(merged)
}

/// Consumer names found more than once, with the catalogs that list them.
pub fn duplicates(entries: &[Value]) -> Vec<(String, Vec<String>)> {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in entries {
        seen.entry(text(e, "name"))
            .or_default()
            .push(text(e, "catalog"));
    }
    seen.into_iter()
        .filter(|(_, files)| files.len() > 1)
        .collect()
}

/// A field as text (`-` when absent or null).
fn text(entry: &Value, field: &str) -> String {
    match entry.get(field) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// One line per consumer: name, owner, broker and URL, source, group, dead letters,
/// retry (cut), description (cut).
pub fn table(entries: &[Value]) -> String {
    let columns = [
        ("NAME", "name", 40),
        ("OWNER", "owner", 30),
        ("BROKER", "broker", 16),
        ("URL", "broker_url", 40),
        ("SOURCE", "source", 40),
        ("GROUP", "group", 30),
        ("DEAD LETTERS", "dead_letters", 40),
        ("RETRY", "retry", 40),
        ("DESCRIPTION", "description", 60),
    ];
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            columns
                .iter()
                .map(|(_, f, max)| cut(&text(e, f), *max))
                .collect()
        })
        .collect();
    let header: Vec<&str> = columns.iter().map(|(h, _, _)| *h).collect();
    crate::table::render(&header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_files_and_reports_a_name_claimed_twice() {
        let a = r#"[{"name":"billing","owner":"team-billing","broker":"kafka","source":"orders"}]"#;
        let b = r#"[{"name":"billing","owner":"team-x"},{"name":"shipping","owner":null}]"#;
        let merged = merge(&[("a.json".into(), a.into()), ("b.json".into(), b.into())]).unwrap();
        assert_eq!(merged.len(), 3);
        assert_eq!(merged[0]["catalog"], "a.json");
        assert_eq!(
            duplicates(&merged),
            vec![(
                "billing".to_owned(),
                vec!["a.json".to_owned(), "b.json".to_owned()]
            )]
        );
        let table = table(&merged);
        assert!(table.starts_with("NAME"), "{table}");
        assert!(
            table.contains("team-billing") && table.contains("shipping"),
            "{table}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_catalog_is_a_usage_error_naming_it() {
        for bad in ["{}", "[1]", r#"[{"owner":"x"}]"#, "not json"] {
            let err = merge(&[("bad.json".into(), bad.into())]).unwrap_err();
            assert_eq!(err.code(), 2);
            assert!(err.to_string().contains("bad.json"), "{err}");
        }
    }
}
