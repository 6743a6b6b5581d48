//! Compose configs and secrets: the ConfigMaps and Secrets that hold them and the mounts of a service.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::converter::{Converter, FileKind, StackFile};
use super::labels::STACK_LABEL;
use super::values::{list_at, object_name, str_of};

impl Converter<'_> {
    /// A top-level config or secret (`file`, `content`/`environment`, or `external`).
    pub(super) fn stack_file(&self, kind: FileKind, name: &str, def: &Value) -> Result<StackFile> {
        let def = def
            .as_object()
            .ok_or_else(|| anyhow!("must be a mapping"))?;
        for k in def.keys() {
            if ![
                "file",
                "content",
                "environment",
                "external",
                "name",
                "labels",
            ]
            .contains(&k.as_str())
            {
                bail!("Additional property {k} is not allowed");
            }
        }
        let object_name = object_name(str_of(def.get("name"), "name")?.unwrap_or(name))?;
        let key = name.to_string();
        if def.get("external").and_then(Value::as_bool) == Some(true) {
            return Ok(StackFile {
                object_name,
                key,
                object: None,
            });
        }
        let content: Vec<u8> = if let Some(f) = str_of(def.get("file"), "file")? {
            let path = self.base.join(f);
            std::fs::read(&path).with_context(|| format!("read {}", path.display()))?
        } else if let (FileKind::Config, Some(c)) = (kind, str_of(def.get("content"), "content")?) {
            c.as_bytes().to_vec()
        } else if let (FileKind::Secret, Some(var)) =
            (kind, str_of(def.get("environment"), "environment")?)
        {
            (self.env)(var)
                .ok_or_else(|| anyhow!("environment variable {var} is not set"))?
                .into_bytes()
        } else {
            bail!(
                "needs file, {} or external",
                match kind {
                    FileKind::Config => "content",
                    FileKind::Secret => "environment",
                }
            );
        };
        let meta = json!({"name": object_name, "namespace": self.stack, "labels": {STACK_LABEL: self.stack}});
        let object = match kind {
            FileKind::Config => {
                let text = String::from_utf8(content)
                    .map_err(|_| anyhow!("is not UTF-8 text (binary configs are not supported)"))?;
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {key.clone(): text}})
            }
            FileKind::Secret => json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta,
                "type": "Opaque", "data": {key.clone(): base64::engine::general_purpose::STANDARD.encode(&content)}}),
        };
        Ok(StackFile {
            object_name,
            key,
            object: Some(object),
        })
    }

    /// The mounts and volumes for a service's `configs:` or `secrets:` list, and a digest of what they hold.
    pub(super) fn file_mounts(
        &mut self,
        kind: FileKind,
        svc: &Map<String, Value>,
        first_volume: usize,
    ) -> Result<(Vec<Value>, Vec<Value>, String)> {
        let (mut mounts, mut vols, mut digest) = (Vec::new(), Vec::new(), String::new());
        for (i, e) in list_at(svc, kind.section())?.into_iter().enumerate() {
            let (source, target) = match e {
                Value::String(s) => (s.clone(), None),
                Value::Object(m) => {
                    for k in m.keys() {
                        match k.as_str() {
                            "source" | "target" => {}
                            "uid" | "gid" | "mode" => {
                                self.ignored.insert(format!("{}.{k}", kind.section()));
                            }
                            _ => bail!("{} Additional property {k} is not allowed", kind.section()),
                        }
                    }
                    let source = str_of(m.get("source"), "source")?
                        .ok_or_else(|| anyhow!("{} entries need a source", kind.section()))?;
                    (
                        source.to_string(),
                        str_of(m.get("target"), "target")?.map(str::to_string),
                    )
                }
                _ => bail!("{} entries must be names or mappings", kind.section()),
            };
            let file = self.files.get(&(kind, source.clone())).ok_or_else(|| {
                anyhow!(
                    "{} {source:?} is not declared in the top-level {}",
                    kind.singular(),
                    kind.section()
                )
            })?;
            // Swarm's defaults: configs at /NAME, secrets at /run/secrets/NAME (a relative target too).
            let target = match (kind, target) {
                (_, Some(t)) if t.starts_with('/') => t,
                (FileKind::Config, t) => format!("/{}", t.unwrap_or(source.clone())),
                (FileKind::Secret, t) => format!("/run/secrets/{}", t.unwrap_or(source.clone())),
            };
            let vol_name = format!("vol-{}", first_volume + i);
            let items = json!([{"key": file.key, "path": file.key}]);
            let source_spec = match kind {
                FileKind::Config => {
                    json!({"configMap": {"name": file.object_name, "items": items}})
                }
                FileKind::Secret => {
                    json!({"secret": {"secretName": file.object_name, "items": items}})
                }
            };
            let mut vol = source_spec;
            vol["name"] = json!(vol_name);
            vols.push(vol);
            mounts.push(json!({"name": vol_name, "mountPath": target, "subPath": file.key, "readOnly": true}));
            if let Some(o) = &file.object {
                digest.push_str(&o["data"].to_string());
            }
        }
        Ok((mounts, vols, digest))
    }
}
