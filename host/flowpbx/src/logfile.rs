//! The log's destination: standard error, or a file rotated by size (`--log-file`,
//! `--log-max-mb`, `--log-keep`): when a write would take the file past the size it is renamed
//! to `file.1` (the older ones shift to `.2` … `.N`, the oldest is removed) and a new file is
//! started. Lines are never split across files.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

struct Rotating {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: File,
    size: u64,
}

impl Rotating {
    fn open(path: &Path) -> io::Result<(File, u64)> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok((file, size))
    }

    fn rotate(&mut self) -> io::Result<()> {
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = std::fs::remove_file(numbered(self.keep));
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        let (file, size) = Self::open(&self.path)?;
        self.file = file;
        self.size = size;
        Ok(())
    }

    fn write_line(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }
}

/// A `MakeWriter` for tracing: stderr or the rotating file.
#[derive(Clone)]
pub struct LogWriter(Option<Arc<Mutex<Rotating>>>);

impl LogWriter {
    pub fn stderr() -> LogWriter {
        LogWriter(None)
    }

    pub fn file(path: &Path, max_bytes: u64, keep: u32) -> io::Result<LogWriter> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let (file, size) = Rotating::open(path)?;
        Ok(LogWriter(Some(Arc::new(Mutex::new(Rotating { path: path.to_path_buf(), max_bytes, keep, file, size })))))
    }
}

/// One event's bytes, written whole when dropped (tracing formats an event into several
/// writes).
pub struct EventWriter {
    target: Option<Arc<Mutex<Rotating>>>,
    buf: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        match &self.target {
            None => {
                let _ = io::stderr().write_all(&self.buf);
            }
            Some(r) => {
                if let Ok(mut r) = r.lock()
                    && let Err(e) = r.write_line(&self.buf)
                {
                    let _ = writeln!(io::stderr(), "flowpbx: writing the log file: {e}");
                }
            }
        }
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter { target: self.0.clone(), buf: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_rotates_by_size_and_keeps_n() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowpbx.log");
        let w = LogWriter::file(&path, 100, 2).unwrap();
        for i in 0..10 {
            let mut e = w.make_writer();
            e.write_all(format!("line {i:02} {}\n", "x".repeat(30)).as_bytes()).unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let current = read(&path);
        assert!(current.len() <= 100 && current.ends_with('\n'), "{current:?}");
        assert!(current.contains("line 09"));
        assert!(read(&dir.path().join("flowpbx.log.1")).contains("line 0"));
        assert!(dir.path().join("flowpbx.log.2").exists());
        assert!(!dir.path().join("flowpbx.log.3").exists(), "only two rotated files are kept");
        // nothing was split: every file holds whole lines
        for f in ["flowpbx.log", "flowpbx.log.1", "flowpbx.log.2"] {
            assert!(read(&dir.path().join(f)).lines().all(|l| l.starts_with("line ") && l.len() == 38));
        }
    }
}
