//! Embeds the default prompt set: lists `prompts/*.wav` at the workspace root and writes a
//! table of `include_bytes!` for `src/prompts.rs`.
use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("../../prompts");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "wav"))
                .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p.canonicalize().ok()?)))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::from("/// The default prompts: (name, WAV bytes), sorted by name.\npub static EMBEDDED: &[(&str, &[u8])] = &[\n");
    for (name, path) in &names {
        println!("cargo:rerun-if-changed={}", path.display());
        let _ = writeln!(out, "    ({name:?}, include_bytes!({:?})),", path.display().to_string());
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("prompts.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}
