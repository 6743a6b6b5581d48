//! Reading manifests for `apply -f` / `delete -f`: files, directories (recursively, `.yaml`/`.yml`/`.json`) and
//! stdin (`-`), each holding one or more YAML documents or a JSON object/`List`.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

/// One object from a manifest, with where it came from (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// File path or `"STDIN"`.
    pub source: String,
    /// The object as JSON.
    pub object: Value,
}

impl Document {
    /// `apiVersion` of the object.
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }
    /// `kind` of the object.
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }
    /// `metadata.name` of the object.
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }
    /// `metadata.namespace`, when set.
    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str()
    }
}

/// Lists the manifest files under `path`: the file itself, or every `.yaml`/`.yml`/`.json` file below a
/// directory, recursively, in sorted order (kubectl's order is lexical too).
pub fn collect_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("the path \"{}\" does not exist", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("failed to read directory {}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            out.extend(collect_files(&p)?);
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Parses the text of one file into objects. Empty documents are skipped; `kind: List` (and `*List`) objects
/// are flattened into their items.
pub fn parse_documents(text: &str, source: &str) -> Result<Vec<Document>> {
    let mut out = Vec::new();
    let trimmed = text.trim_start();
    let values: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // JSON may hold several concatenated objects, as `kubectl get -o json` pipelines produce.
        serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .with_context(|| format!("error parsing {source}"))?
    } else {
        let mut v = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(text) {
            let value =
                Value::deserialize(doc).with_context(|| format!("error parsing {source}"))?;
            v.push(value);
        }
        v
    };
    for value in values {
        flatten(value, source, &mut out)?;
    }
    Ok(out)
}

fn flatten(value: Value, source: &str, out: &mut Vec<Document>) -> Result<()> {
    match value {
        Value::Null => Ok(()),
        Value::Array(items) => {
            for i in items {
                flatten(i, source, out)?;
            }
            Ok(())
        }
        Value::Object(ref m) => {
            if m.is_empty() {
                return Ok(());
            }
            let kind = m.get("kind").and_then(Value::as_str).unwrap_or_default();
            if kind.ends_with("List") && m.get("items").is_some_and(Value::is_array) {
                let items = m["items"].as_array().cloned().unwrap_or_default();
                for i in items {
                    flatten(i, source, out)?;
                }
                return Ok(());
            }
            if m.get("apiVersion").and_then(Value::as_str).is_none() || kind.is_empty() {
                bail!("error validating data from {source}: apiVersion and kind must be set");
            }
            out.push(Document {
                source: source.to_string(),
                object: value,
            });
            Ok(())
        }
        _ => bail!("error parsing {source}: a manifest document must be an object"),
    }
}

/// Reads every `-f` argument: `-` reads `stdin`, a directory is walked, a file is read.
pub fn read_sources(args: &[String], stdin: &mut dyn Read) -> Result<Vec<Document>> {
    let mut out = Vec::new();
    for arg in args {
        if arg == "-" {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .context("failed to read stdin")?;
            out.extend(parse_documents(&text, "STDIN")?);
            continue;
        }
        for file in collect_files(Path::new(arg))? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("failed to read {}", file.display()))?;
            out.extend(parse_documents(&text, &file.display().to_string())?);
        }
    }
    if out.is_empty() {
        bail!("no objects passed to apply");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI: &str = "\
# a comment header
apiVersion: v1
kind: Namespace
metadata: {name: a}
---
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: a
spec: {replicas: 2}
...
";

    #[test]
    fn multi_document_yaml_skips_empty_documents() {
        let docs = parse_documents(MULTI, "f.yaml").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].kind(), "Namespace");
        assert_eq!(docs[1].name(), "web");
        assert_eq!(docs[1].namespace(), Some("a"));
        assert_eq!(docs[1].object["spec"]["replicas"], 2);
        assert_eq!(docs[1].source, "f.yaml");
    }

    #[test]
    fn json_object_and_list_are_flattened() {
        let text = r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}},
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"y"}}]}
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"z"}}"#;
        let docs = parse_documents(text, "l.json").unwrap();
        let names: Vec<_> = docs.iter().map(|d| d.name()).collect();
        assert_eq!(names, ["x", "y", "z"]);
    }

    #[test]
    fn missing_kind_is_rejected() {
        assert!(parse_documents("metadata: {name: x}\n", "f").is_err());
        assert!(parse_documents("- 1\n- 2\n", "f").is_err());
        assert!(parse_documents("a: [b\n", "f").is_err());
    }

    #[test]
    fn directories_are_walked_recursively_and_sorted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let cm = |n: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {n}}}\n");
        std::fs::write(dir.path().join("b.yaml"), cm("b")).unwrap();
        std::fs::write(dir.path().join("a.yml"), cm("a")).unwrap();
        std::fs::write(
            dir.path().join("sub/c.json"),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("README.md"), "not a manifest").unwrap();
        let docs =
            read_sources(&[dir.path().display().to_string()], &mut std::io::empty()).unwrap();
        let names: Vec<_> = docs.iter().map(|d| d.name()).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn stdin_is_read_for_dash() {
        let mut input = MULTI.as_bytes();
        let docs = read_sources(&["-".to_string()], &mut input).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].source, "STDIN");
    }

    #[test]
    fn missing_path_and_empty_input_are_errors() {
        assert!(read_sources(&["/nonexistent/x.yaml".into()], &mut std::io::empty()).is_err());
        let mut empty = "---\n".as_bytes();
        assert!(read_sources(&["-".into()], &mut empty).is_err());
    }
}
