//! `web/openapi.json` is the OpenAPI document the web UI's wire types are generated from
//! (`web/src/api/openapi.gen.ts`, by openapi-typescript in `npm run gen:api`, which the web
//! build and its type check run). This test fails when that file is not the document this
//! crate serves at `/api/v1/openapi.json`, so a change of the server's wire types reaches the
//! web's type check in the same commit. `scripts/api-types` rewrites the file (it runs this
//! test with `FLOWPBX_UPDATE_OPENAPI=1`) and regenerates the TypeScript.

use std::path::PathBuf;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web/openapi.json")
}

/// The document as the file holds it: pretty JSON and a final newline.
fn current() -> String {
    let mut text = serde_json::to_string_pretty(api::openapi::document()).expect("the document serialises");
    text.push('\n');
    text
}

/// The first line where `committed` and `current` differ (1-based), with both versions of it;
/// a file cut short differs at its first missing line.
fn first_difference(committed: &str, current: &str) -> Option<(usize, String, String)> {
    let (mut a, mut b) = (committed.split('\n'), current.split('\n'));
    for n in 1.. {
        match (a.next(), b.next()) {
            (None, None) => return None,
            (x, y) if x == y => continue,
            (x, y) => return Some((n, x.unwrap_or("(end of file)").to_owned(), y.unwrap_or("(end of file)").to_owned())),
        }
    }
    None
}

#[test]
fn the_web_types_are_generated_from_the_served_document() {
    let path = committed_path();
    let current = current();
    if std::env::var_os("FLOWPBX_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &current).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}; run scripts/api-types", path.display()));
    if let Some((line, was, now)) = first_difference(&committed, &current) {
        panic!(
            "web/openapi.json is not the document the server serves (first difference at line {line}:\n  file:   {was}\n  server: {now}\n): \
             run scripts/api-types to regenerate it and the web's types, then fix what `npm run typecheck` in web/ reports"
        );
    }
}

/// The comparison sees a changed field, a file cut short and one with more in it.
#[test]
fn a_stale_document_is_told_apart() {
    let current = current();
    assert_eq!(first_difference(&current, &current), None);
    let renamed = current.replacen("\"ErrorEnvelope\"", "\"ErrorEnvelop\"", 1);
    let line = current.lines().position(|l| l.contains("\"ErrorEnvelope\"")).expect("the document names ErrorEnvelope") + 1;
    assert_eq!(first_difference(&renamed, &current).map(|d| d.0), Some(line));
    let cut = &current[..current.len() / 2];
    assert!(first_difference(cut, &current).is_some());
    assert!(first_difference(&format!("{current}{{}}\n"), &current).is_some());
    assert!(first_difference(current.trim_end(), &current).is_some(), "the final newline counts");
}
