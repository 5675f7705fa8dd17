//! The bearer token `/api/v1/edges` may require (`api.token_file`). The
//! file is re-read when it changes (inode, size or mtime), so a rotated
//! Secret or a rewritten file takes effect without a restart; a file that
//! becomes unreadable denies every request until it is readable again.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

pub struct BearerToken {
    path: PathBuf,
    current: Mutex<Current>,
}

struct Current {
    stamp: Stamp,
    /// `None`: the file changed into something unusable (logged once).
    token: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl Stamp {
    fn of(m: &Metadata) -> Self {
        Self {
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        }
    }
}

impl BearerToken {
    /// Reads the token now: a missing, unreadable or empty file is an error
    /// at start, before anything is attached.
    pub fn load(path: &Path) -> Result<Self, String> {
        let (stamp, token) = read(path)?;
        Ok(Self {
            path: path.to_owned(),
            current: Mutex::new(Current {
                stamp,
                token: Some(token),
            }),
        })
    }

    /// Whether `authorization` (the header's value) presents the token.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let token = self.token();
        match (
            token,
            authorization.and_then(|a| a.strip_prefix(b"Bearer ")),
        ) {
            (Some(t), Some(given)) => same(t.as_bytes(), given.trim_ascii()),
            _ => false,
        }
    }

    /// The token, re-read if the file changed.
    fn token(&self) -> Option<String> {
        let mut cur = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let stamp = std::fs::metadata(&self.path).map(|m| Stamp::of(&m));
        if stamp.as_ref().ok() != Some(&cur.stamp) || cur.token.is_none() {
            match read(&self.path) {
                Ok((stamp, token)) => {
                    if cur.token.as_deref() != Some(&token) {
                        log::info!("api.token_file {}: token reloaded", self.path.display());
                    }
                    *cur = Current {
                        stamp,
                        token: Some(token),
                    };
                }
                Err(e) => {
                    if cur.token.is_some() {
                        log::warn!("api.token_file: {e}; refusing API requests until it is fixed");
                    }
                    cur.token = None;
                }
            }
        }
        cur.token.clone()
    }
}

fn read(path: &Path) -> Result<(Stamp, String), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{shown} is empty"));
    }
    if token.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(format!(
            "{shown}: a token is one line of printable ASCII without spaces"
        ));
    }
    Ok((Stamp::of(&meta), token.to_owned()))
}

/// Compares in time independent of where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_token_and_follows_the_file() {
        let dir = std::env::temp_dir().join(format!("plainsight-bearer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "s3cret-one\n").unwrap();
        let t = BearerToken::load(&path).expect("loads");
        assert!(t.admits(Some(b"Bearer s3cret-one")));
        assert!(!t.admits(Some(b"Bearer s3cret-on")));
        assert!(!t.admits(Some(b"Basic s3cret-one")));
        assert!(!t.admits(None));

        // Rotation by rename, as a Kubernetes Secret volume does.
        let next = dir.join("token.next");
        std::fs::write(&next, "s3cret-two").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert!(t.admits(Some(b"Bearer s3cret-two")));
        assert!(!t.admits(Some(b"Bearer s3cret-one")));

        // Gone: nothing is admitted; back: admitted again.
        std::fs::remove_file(&path).unwrap();
        assert!(!t.admits(Some(b"Bearer s3cret-two")));
        std::fs::write(&path, "s3cret-three").unwrap();
        assert!(t.admits(Some(b"Bearer s3cret-three")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unusable_file_fails_at_load() {
        let e = BearerToken::load(Path::new("/nonexistent/plainsight-token"))
            .err()
            .expect("fails");
        assert!(e.starts_with("/nonexistent/plainsight-token: "), "{e}");
        let dir = std::env::temp_dir().join(format!("plainsight-bearer-e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, " \n").unwrap();
        assert!(
            BearerToken::load(&path)
                .err()
                .expect("empty")
                .ends_with("is empty")
        );
        std::fs::write(&path, "two words").unwrap();
        assert!(BearerToken::load(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
