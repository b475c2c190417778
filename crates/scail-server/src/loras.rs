//! The server's LoRA folder (`scail serve --lora-dir`): what `/openapi.json` lists, what a
//! request's `loras` may name, and the files the generator gets. A request only ever names a
//! file in this folder (the name's form is checked by the request's validation: no paths).

use std::path::{Path, PathBuf};

use scail_core::{FieldError, LoraFile, LoraRef};

/// The LoRA files in `dir` (plain files with a LoRA extension), sorted; none without a folder.
pub fn available(dir: Option<&Path>) -> Vec<String> {
    let Some(dir) = dir else { return Vec::new() };
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && scail_core::lora_name_problem(n).is_none())
        .collect();
    names.sort();
    names
}

/// Each named LoRA's file in `dir`, or one 422 entry per name that is not there.
pub fn resolve(dir: Option<&Path>, refs: &[LoraRef]) -> Result<Vec<LoraFile>, Vec<FieldError>> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        let path: Option<PathBuf> = dir.map(|d| d.join(&r.name)).filter(|p| p.is_file());
        match path {
            Some(path) => files.push(LoraFile {
                path,
                scale: r.scale,
            }),
            None => {
                let msg = match dir {
                    None => {
                        "this server has no LoRA folder (start it with --lora-dir DIR)".to_string()
                    }
                    Some(d) => {
                        let have = available(Some(d));
                        let list = if have.is_empty() {
                            "none".to_string()
                        } else {
                            have.join(", ")
                        };
                        format!(
                            "no LoRA named `{}` on this server (available: {list})",
                            r.name
                        )
                    }
                };
                let mut e = FieldError::new("loras", msg, "value_error.lora.unknown");
                e.loc.push(i.to_string());
                e.loc.push("name".into());
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

/// The OpenAPI document with the folder's LoRA names as the enum of `loras[].name`.
pub fn list_in_openapi(doc: &mut serde_json::Value, dir: Option<&Path>) {
    let names = available(dir);
    let name = &mut doc["components"]["schemas"]["ScailInput"]["properties"]["loras"]["items"]
        ["properties"]["name"];
    if name.is_object() {
        name["enum"] = serde_json::json!(names);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_inside_the_folder_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.safetensors"), b"x").unwrap();
        std::fs::write(dir.path().join("a.pt"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub.safetensors")).unwrap();
        assert_eq!(available(Some(dir.path())), ["a.pt", "b.safetensors"]);
        let r = |n: &str| LoraRef {
            name: n.into(),
            scale: 0.5,
        };
        let ok = resolve(Some(dir.path()), &[r("a.pt")]).unwrap();
        assert_eq!(ok[0].path, dir.path().join("a.pt"));
        assert_eq!(ok[0].scale, 0.5);
        let e = resolve(Some(dir.path()), &[r("a.pt"), r("zz.safetensors")]).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].loc, ["body", "loras", "1", "name"]);
        assert!(e[0].msg.contains("a.pt, b.safetensors"), "{}", e[0].msg);
        let e = resolve(None, &[r("a.pt")]).unwrap_err();
        assert!(e[0].msg.contains("--lora-dir"), "{}", e[0].msg);
        assert!(resolve(None, &[]).unwrap().is_empty());
    }
}
