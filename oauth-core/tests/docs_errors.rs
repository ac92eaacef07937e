//! The error hook's reason slugs are public contract: every slug the code
//! can report must be listed in docs/errors.md (regenerate it with
//! `python3 scripts/gen-errors-doc.py`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_reason_slug_is_documented() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(crate_dir.join("../docs/errors.md")).unwrap();
    let mut files = Vec::new();
    rust_files(&crate_dir.join("src"), &mut files);
    let needle = "Reason::new(\"";
    let mut missing = Vec::new();
    let mut seen = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices(needle) {
            let rest = &text[at + needle.len()..];
            let slug = &rest[..rest.find('"').unwrap()];
            seen += 1;
            if !doc.contains(&format!("| `{slug}` |")) {
                missing.push(format!("{slug} ({})", file.display()));
            }
        }
    }
    assert!(seen > 100, "the scan found only {seen} slugs; is the pattern still right?");
    assert!(missing.is_empty(), "undocumented reasons; run scripts/gen-errors-doc.py: {missing:?}");
}
