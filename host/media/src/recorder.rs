//! The recorder's I/O half: one writer thread for all recordings, fed through a queue whose
//! audio share is bounded (a relay worker never waits for the disk: when the queue is full the
//! block is dropped and counted), files written under a temporary name and renamed on close,
//! and the free-disk check that skips recording when space is short.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::error::{MediaError, Result};
use crate::record::{temporary_path, RATE};
use crate::wav::WavWriter;

/// Bytes available to unprivileged users on the file system holding `path` (the nearest
/// existing ancestor is measured when `path` does not exist yet).
pub fn free_space(path: &Path) -> Result<u64> {
    let mut p = path;
    loop {
        if p.exists() {
            let st = rustix::fs::statvfs(p).map_err(|e| MediaError::Io(e.into()))?;
            return Ok(st.f_bavail.saturating_mul(st.f_frsize));
        }
        p = p.parent().ok_or_else(|| MediaError::Config(format!("no existing folder above {}", path.display())))?;
    }
}

/// The outcome of a finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingInfo {
    /// The final WAV.
    pub path: PathBuf,
    /// 1 (one leg) or 2 (caller left, callee right).
    pub channels: u16,
    /// Length of the audio.
    pub duration: Duration,
    /// Audio blocks dropped because the disk could not keep up.
    pub dropped_blocks: u64,
}

/// Counters a recording shares between the relay worker and the writer.
#[derive(Debug, Default)]
pub struct RecordingCounters {
    /// Blocks dropped because the queue was full.
    pub dropped_blocks: AtomicU64,
}

enum Msg {
    Open { id: u64, path: PathBuf, channels: u16, counters: Arc<RecordingCounters> },
    Data { id: u64, samples: Vec<i16> },
    Close { id: u64, reply: Option<tokio::sync::oneshot::Sender<Result<RecordingInfo>>> },
}

struct Open {
    writer: WavWriter<BufWriter<File>>,
    tmp: PathBuf,
    path: PathBuf,
    channels: u16,
    counters: Arc<RecordingCounters>,
}

/// Queue and writer thread shared by every recording of an engine. Cloning shares them.
#[derive(Clone)]
pub struct RecorderPool {
    tx: mpsc::Sender<Msg>,
    queued_bytes: Arc<AtomicUsize>,
    max_queued_bytes: usize,
    next_id: Arc<AtomicU64>,
    /// Set while recording is skipped for lack of disk space (the health endpoint reads it).
    pub disk_low: Arc<AtomicBool>,
}

impl std::fmt::Debug for RecorderPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderPool").field("queued_bytes", &self.queued_bytes.load(Ordering::Relaxed)).finish()
    }
}

/// One running recording as the relay worker sees it.
#[derive(Debug, Clone)]
pub struct RecordingSink {
    id: u64,
    pool: RecorderPool,
    counters: Arc<RecordingCounters>,
}

impl RecordingSink {
    /// Queues a block; drops and counts it when the queue is over its bound. Never blocks.
    pub fn push(&self, samples: Vec<i16>) {
        let bytes = samples.len() * 2;
        let q = self.pool.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        if q + bytes > self.pool.max_queued_bytes || self.pool.tx.send(Msg::Data { id: self.id, samples }).is_err() {
            self.pool.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            self.counters.dropped_blocks.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Closes the file (rename to the final name) once the writer has everything queued
    /// before; the reply says where it went.
    pub fn close(self, reply: Option<tokio::sync::oneshot::Sender<Result<RecordingInfo>>>) {
        let _ = self.pool.tx.send(Msg::Close { id: self.id, reply });
    }

    /// Blocks dropped so far.
    pub fn dropped_blocks(&self) -> u64 {
        self.counters.dropped_blocks.load(Ordering::Relaxed)
    }
}

impl RecorderPool {
    /// Starts the writer thread. `max_queued_bytes` bounds audio waiting for the disk.
    pub fn start(max_queued_bytes: usize) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let q = queued_bytes.clone();
        std::thread::Builder::new().name("media-recorder".into()).spawn(move || writer_loop(rx, q))?;
        Ok(RecorderPool { tx, queued_bytes, max_queued_bytes, next_id: Arc::new(AtomicU64::new(1)), disk_low: Arc::new(AtomicBool::new(false)) })
    }

    /// Checks free space under `dir` against `min_free`; below it, logs an admin alert, sets
    /// [`RecorderPool::disk_low`] and refuses.
    pub fn check_disk(&self, dir: &Path, min_free: u64) -> Result<()> {
        let free = free_space(dir)?;
        if free < min_free {
            if !self.disk_low.swap(true, Ordering::Relaxed) {
                tracing::error!(alert = "recording_storage_low", free, threshold = min_free, dir = %dir.display(), "recording storage low: recordings are skipped until space is freed");
            }
            return Err(MediaError::DiskFull { path: dir.to_path_buf(), free, threshold: min_free });
        }
        if self.disk_low.swap(false, Ordering::Relaxed) {
            tracing::info!(free, "recording storage available again");
        }
        Ok(())
    }

    /// Opens a recording that will end up at `path`.
    pub fn open(&self, path: PathBuf, channels: u16) -> Result<RecordingSink> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let counters = Arc::new(RecordingCounters::default());
        self.tx.send(Msg::Open { id, path, channels, counters: counters.clone() }).map_err(|_| MediaError::SessionClosed)?;
        Ok(RecordingSink { id, pool: self.clone(), counters })
    }
}

fn writer_loop(rx: mpsc::Receiver<Msg>, queued: Arc<AtomicUsize>) {
    let mut open: HashMap<u64, Option<Open>> = HashMap::new();
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Open { id, path, channels, counters } => {
                let tmp = temporary_path(&path);
                let made = path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .map_err(MediaError::from)
                    .and_then(|_| File::create(&tmp).map_err(MediaError::from))
                    .and_then(|f| WavWriter::new(BufWriter::with_capacity(64 * 1024, f), channels, RATE));
                match made {
                    Ok(writer) => {
                        open.insert(id, Some(Open { writer, tmp, path, channels, counters }));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, path = %path.display(), "cannot create recording");
                        open.insert(id, None);
                    }
                }
            }
            Msg::Data { id, samples } => {
                queued.fetch_sub(samples.len() * 2, Ordering::AcqRel);
                if let Some(Some(o)) = open.get_mut(&id)
                    && let Err(e) = o.writer.write_samples(&samples)
                {
                    tracing::error!(error = %e, path = %o.path.display(), "recording write failed");
                    o.counters.dropped_blocks.fetch_add(1, Ordering::Relaxed);
                }
            }
            Msg::Close { id, reply } => {
                let result = match open.remove(&id) {
                    Some(Some(o)) => finish(o),
                    _ => Err(MediaError::Io(std::io::Error::other("the recording file could not be created"))),
                };
                if let Err(e) = &result {
                    tracing::error!(error = %e, "recording not saved");
                }
                if let Some(r) = reply {
                    let _ = r.send(result);
                }
            }
        }
    }
}

fn finish(o: Open) -> Result<RecordingInfo> {
    let frames = o.writer.data_len() / (2 * u64::from(o.channels));
    let w = o.writer.finish()?;
    let file = w.into_inner().map_err(|e| MediaError::Io(e.into_error()))?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&o.tmp, &o.path)?;
    Ok(RecordingInfo {
        path: o.path,
        channels: o.channels,
        duration: Duration::from_micros(frames * 1_000_000 / u64::from(RATE)),
        dropped_blocks: o.counters.dropped_blocks.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_under_a_temporary_name_then_renames() {
        let dir = std::env::temp_dir().join(format!("flowpbx-rec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pool = RecorderPool::start(1 << 20).unwrap();
        let path = dir.join("recordings/2026/01/02/call-1.wav");
        let sink = pool.open(path.clone(), 2).unwrap();
        sink.push([100i16, -100].repeat(800));
        // while open, only the hidden .part file exists
        std::thread::sleep(Duration::from_millis(100));
        assert!(temporary_path(&path).exists());
        assert!(!path.exists());
        let (tx, rx) = tokio::sync::oneshot::channel();
        sink.close(Some(tx));
        let info = rx.blocking_recv().unwrap().unwrap();
        assert_eq!(info.path, path);
        assert_eq!(info.channels, 2);
        assert_eq!(info.duration, Duration::from_millis(100));
        assert!(path.exists());
        assert!(!temporary_path(&path).exists());
        let d = crate::wav::decode(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(d.format.channels, 2);
        assert_eq!(d.samples.len(), 800);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let pool = RecorderPool::start(100).unwrap();
        let dir = std::env::temp_dir().join(format!("flowpbx-rec-drop-{}", std::process::id()));
        let sink = pool.open(dir.join("x.wav"), 1).unwrap();
        sink.push(vec![0; 1000]); // 2000 bytes > 100: dropped
        assert_eq!(sink.dropped_blocks(), 1);
        let (tx, rx) = tokio::sync::oneshot::channel();
        sink.close(Some(tx));
        assert_eq!(rx.blocking_recv().unwrap().unwrap().dropped_blocks, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn disk_check() {
        let pool = RecorderPool::start(1000).unwrap();
        let tmp = std::env::temp_dir();
        assert!(free_space(&tmp.join("does/not/exist")).unwrap() > 0);
        pool.check_disk(&tmp, 1).unwrap();
        assert!(!pool.disk_low.load(Ordering::Relaxed));
        assert!(matches!(pool.check_disk(&tmp, u64::MAX), Err(MediaError::DiskFull { .. })));
        assert!(pool.disk_low.load(Ordering::Relaxed));
        pool.check_disk(&tmp, 1).unwrap();
        assert!(!pool.disk_low.load(Ordering::Relaxed));
    }
}
