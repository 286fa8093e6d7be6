//! Builds the admin SPA (`web/`) and embeds it: `npm install` (of the locked versions) when `node_modules` is missing or
//! older than `package-lock.json`, `npm run build` when the web sources changed since the last
//! build (a hash of them is kept in `web/dist/.source-hash`), then every file of `web/dist`
//! with its precompressed `.gz`/`.br` siblings is copied to `OUT_DIR` and listed in
//! `OUT_DIR/spa_assets.rs` as `include_bytes!`, so the binary carries the whole SPA and a
//! plain `cargo build --release --bin flowpbx` produces it.
//!
//! Several cargo target directories share one checkout: the npm steps run under a file lock.
//! `FLOWPBX_WEB_DIST=<dir>` embeds a prebuilt dist instead (no Node needed).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The web sources whose change rebuilds the SPA.
const SOURCES: &[&str] = &["src", "index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json", "scripts", "public"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let web = manifest.join("../../web");
    println!("cargo::rerun-if-env-changed=FLOWPBX_WEB_DIST");
    let dist = match std::env::var_os("FLOWPBX_WEB_DIST") {
        Some(d) => PathBuf::from(d),
        None => {
            for s in SOURCES {
                println!("cargo::rerun-if-changed={}", web.join(s).display());
            }
            build_web(&web);
            web.join("dist")
        }
    };
    embed(&dist, &out);
}

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: {msg}\n");
    panic!("{msg}");
}

/// FNV-1a over the bytes fed to it: a cache stamp, not a security hash.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn feed(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn files_under(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = fs::read_dir(path).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
        entries.sort();
        for e in entries {
            files_under(&e, out);
        }
    } else if path.is_file() {
        out.push(path.to_path_buf());
    }
}

fn hash_files(root: &Path, names: &[&str]) -> String {
    let mut h = Fnv::new();
    let mut files = Vec::new();
    for n in names {
        files_under(&root.join(n), &mut files);
    }
    for f in files {
        let rel = f.strip_prefix(root).unwrap_or(&f);
        h.feed(rel.to_string_lossy().as_bytes());
        h.feed(&[0]);
        h.feed(&fs::read(&f).unwrap_or_default());
        h.feed(&[0]);
    }
    format!("{:016x}", h.0)
}

fn npm(web: &Path, args: &[&str]) {
    let status = Command::new("npm").args(args).current_dir(web).stdout(std::process::Stdio::inherit()).status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!("`npm {}` in {} failed ({s}); its output is above", args.join(" "), web.display())),
        Err(e) => fail(&format!(
            "cannot run npm ({e}): the web UI is built with Node.js 20+ and npm. Run scripts/setup (or set FLOWPBX_WEB_DIST to a built web/dist)"
        )),
    }
}

fn build_web(web: &Path) {
    if !web.join("package.json").is_file() {
        fail(&format!("{} has no package.json: the web UI sources are missing", web.display()));
    }
    // One build at a time per checkout, whichever target dir asks.
    let lock_path = std::env::temp_dir().join(format!("flowpbx-web-build-{}.lock", hash_path(web)));
    let lock = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path);
    let lock = match lock {
        Ok(f) => f,
        Err(e) => fail(&format!("cannot open the build lock {}: {e}", lock_path.display())),
    };
    if let Err(e) = lock.lock() {
        fail(&format!("cannot take the build lock {}: {e}", lock_path.display()));
    }

    // npm ci writes node_modules/.package-lock.json: missing or older than the lock file
    // means node_modules is absent or stale (scripts/setup applies the same rule)
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = mtime(&web.join("node_modules/.package-lock.json"));
    if installed.is_none() || installed < mtime(&web.join("package-lock.json")) {
        // (not `npm ci`: see scripts/setup)
        npm(web, &["install", "--no-audit", "--no-fund"]);
    }

    let source_hash = hash_files(web, SOURCES);
    let dist_stamp = web.join("dist/.source-hash");
    let built = fs::read_to_string(&dist_stamp).ok().as_deref() == Some(source_hash.as_str()) && web.join("dist/index.html").is_file();
    if !built {
        npm(web, &["run", "build"]);
        if let Err(e) = fs::write(&dist_stamp, &source_hash) {
            fail(&format!("cannot write {}: {e}", dist_stamp.display()));
        }
    }
    let _ = lock.unlock();
}

fn hash_path(p: &Path) -> String {
    let mut h = Fnv::new();
    h.feed(p.canonicalize().unwrap_or_else(|_| p.to_path_buf()).to_string_lossy().as_bytes());
    format!("{:016x}", h.0)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("wav") => "audio/wav",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn embed(dist: &Path, out: &Path) {
    if !dist.join("index.html").is_file() {
        fail(&format!("{} has no index.html: the web UI was not built", dist.display()));
    }
    let target = out.join("spa");
    let _ = fs::remove_dir_all(&target);
    let mut files = Vec::new();
    files_under(dist, &mut files);
    let mut code = String::from("// generated by host/api/build.rs from web/dist\npub(crate) static ASSETS: &[Asset] = &[\n");
    let mut count = 0;
    for f in &files {
        let Ok(rel) = f.strip_prefix(dist) else { continue };
        let rel = rel.to_string_lossy().replace('\\', "/");
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        if name.starts_with('.') || rel.ends_with(".gz") || rel.ends_with(".br") {
            continue;
        }
        let copy = |suffix: &str| -> Option<String> {
            let src = PathBuf::from(format!("{}{suffix}", f.display()));
            if !src.is_file() {
                return None;
            }
            let dest = target.join(format!("{rel}{suffix}"));
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).ok()?;
            }
            fs::copy(&src, &dest).ok()?;
            Some(format!("include_bytes!({:?})", dest.display().to_string()))
        };
        let Some(raw) = copy("") else { fail(&format!("cannot copy {}", f.display())) };
        let gz = copy(".gz").map_or("None".to_owned(), |b| format!("Some({b})"));
        let br = copy(".br").map_or("None".to_owned(), |b| format!("Some({b})"));
        let mut h = Fnv::new();
        h.feed(&fs::read(f).unwrap_or_default());
        code.push_str(&format!(
            "    Asset {{ path: {:?}, content_type: {:?}, etag: \"\\\"{:016x}\\\"\", raw: {raw}, gzip: {gz}, brotli: {br} }},\n",
            format!("/{rel}"),
            content_type(&rel),
            h.0
        ));
        count += 1;
    }
    code.push_str("];\n");
    let mut file = fs::File::create(out.join("spa_assets.rs")).unwrap_or_else(|e| fail(&format!("cannot write spa_assets.rs: {e}")));
    file.write_all(code.as_bytes()).unwrap_or_else(|e| fail(&format!("cannot write spa_assets.rs: {e}")));
    if count == 0 {
        fail("web/dist holds no files");
    }
}
