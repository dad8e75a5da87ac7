//! The access log in a file, rotated by size by the writer task itself: when the next line
//! would pass `max_bytes`, `PATH.{K-1}` becomes `PATH.K` (the oldest, dropped when it is
//! overwritten), …, `PATH` becomes `PATH.1`, and a new `PATH` is started. Lines are written
//! whole, so none is split across two files.

use std::io;
use std::path::{Path, PathBuf};

use tokio::fs::File;
use tokio::io::{AsyncWriteExt, BufWriter};

/// Where and how much to keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSettings {
    pub path: PathBuf,
    /// A file is rotated before it would pass this size (a longer line gets a file of its own).
    pub max_bytes: u64,
    /// Rotated files kept (`PATH.1` … `PATH.K`); 0: the file is started over instead.
    pub max_files: u32,
}

pub(super) struct RotatingFile {
    settings: FileSettings,
    file: BufWriter<File>,
    size: u64,
}

impl RotatingFile {
    /// Opens (or creates) the file to append to; synchronous, so a bad path fails at start.
    pub(super) fn open(settings: FileSettings) -> io::Result<Self> {
        let file = open_append(&settings.path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            settings,
            file: BufWriter::new(File::from_std(file)),
            size,
        })
    }

    pub(super) async fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let len = line.len() as u64;
        // Keep writing where we can when rotation fails: a line lost is worse than a file too
        // long.
        if self.size > 0
            && self.size + len > self.settings.max_bytes
            && let Err(e) = self.rotate().await
        {
            tracing::warn!(path = %self.settings.path.display(), error = %e, "cannot rotate the access log file");
            // Tried again after another max_bytes, not on every line.
            self.size = 0;
        }
        self.file.write_all(line).await?;
        self.size += len;
        Ok(())
    }

    pub(super) async fn flush(&mut self) -> io::Result<()> {
        self.file.flush().await
    }

    async fn rotate(&mut self) -> io::Result<()> {
        self.file.flush().await?;
        let path = &self.settings.path;
        let keep = self.settings.max_files;
        if keep > 0 {
            for n in (1..keep).rev() {
                let from = numbered(path, n);
                if tokio::fs::try_exists(&from).await.unwrap_or(false) {
                    tokio::fs::rename(&from, numbered(path, n + 1)).await?;
                }
            }
            tokio::fs::rename(path, numbered(path, 1)).await?;
        } else {
            tokio::fs::remove_file(path).await?;
        }
        self.file = BufWriter::new(File::from_std(open_append(path)?));
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// `PATH.n`.
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rotates_whole_lines_and_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let mut file = RotatingFile::open(FileSettings {
            path: path.clone(),
            max_bytes: 25,
            max_files: 2,
        })
        .unwrap();
        for n in 0..10 {
            file.write_line(format!("line {n:04}\n").as_bytes())
                .await
                .unwrap(); // 10 bytes
        }
        file.flush().await.unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        // Two lines a file; 0-5 rotated away to .2 and .1 then dropped past two.
        assert_eq!(read(path.clone()), "line 0008\nline 0009\n");
        assert_eq!(read(numbered(&path, 1)), "line 0006\nline 0007\n");
        assert_eq!(read(numbered(&path, 2)), "line 0004\nline 0005\n");
        assert!(!numbered(&path, 3).exists());
    }
}
