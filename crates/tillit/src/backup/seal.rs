//! Sealed files of a backup: AES-256-GCM over 1 MiB chunks, streamed, so a database of any
//! size is sealed and opened in constant memory.
//!
//! ```text
//! header  "TLBK" 0x00 0x00 0x00 0x01 (format 1) || nonce prefix (7 random bytes) || chunk size (u32 BE)
//! chunks  AES-256-GCM(key, nonce = prefix || chunk index (u32 BE) || last (0x00 or 0x01),
//!                     aad = header || context) — every chunk holds `chunk size` bytes of
//!                     plaintext and its 16-byte tag, the last chunk as many as are left
//! ```
//!
//! This is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár): the index in the
//! nonce stops chunks from being reordered, the last flag stops truncation at a chunk
//! boundary, and the context (the backup's id and the file's path) in the AAD stops a sealed
//! file from passing for another. Each file has its own random prefix under the backup's key.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::digest::{Context, SHA256};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"TLBK\x00\x00\x00\x01";
const PREFIX_LEN: usize = 7;
const HEADER_LEN: usize = MAGIC.len() + PREFIX_LEN + 4;
const TAG_LEN: usize = 16;
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 1 << 20;

/// What sealing or opening a file saw: sizes and SHA-256 of both forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub plain_size: u64,
    pub plain_sha256: [u8; 32],
    pub sealed_size: u64,
    pub sealed_sha256: [u8; 32],
}

#[derive(Debug)]
pub enum SealError {
    /// The sealed file is not what was sealed: changed, truncated, reordered or another file.
    Changed,
    Io(std::io::Error),
    Rng,
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Changed => f.write_str(
                "its content does not open with the backup's key: it was changed or truncated",
            ),
            Self::Io(e) => write!(f, "{e}"),
            Self::Rng => f.write_str("the random number generator failed"),
        }
    }
}

impl std::error::Error for SealError {}

impl From<std::io::Error> for SealError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

fn key(raw: &[u8; 32]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, raw)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Changed)
}

fn nonce(prefix: &[u8], index: u32, last: bool) -> Result<Nonce, SealError> {
    let mut n = [0u8; 12];
    for (d, s) in n.iter_mut().zip(
        prefix
            .iter()
            .chain(index.to_be_bytes().iter())
            .chain([u8::from(last)].iter()),
    ) {
        *d = *s;
    }
    Nonce::try_assume_unique_for_key(&n).map_err(|_| SealError::Changed)
}

fn digest(c: Context) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(c.finish().as_ref());
    out
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while let Some(rest) = buf.get_mut(n..) {
        if rest.is_empty() {
            break;
        }
        match r.read(rest) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Seals `src` into a new file `dst` (owner-only). `progress` is told the plaintext bytes
/// done.
pub fn seal_file(
    raw_key: &[u8; 32],
    context: &[u8],
    src: &Path,
    dst: &Path,
    mut progress: impl FnMut(u64),
) -> Result<Digests, SealError> {
    use std::os::unix::fs::OpenOptionsExt;
    let key = key(raw_key)?;
    let mut prefix = [0u8; PREFIX_LEN];
    SystemRandom::new()
        .fill(&mut prefix)
        .map_err(|_| SealError::Rng)?;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&prefix);
    header.extend_from_slice(&u32::try_from(CHUNK).unwrap_or(u32::MAX).to_be_bytes());
    let mut aad = header.clone();
    aad.extend_from_slice(context);

    let mut input = BufReader::with_capacity(CHUNK, std::fs::File::open(src)?);
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)?;
    let mut out = BufWriter::with_capacity(CHUNK, out);
    let (mut plain_hash, mut sealed_hash) = (Context::new(&SHA256), Context::new(&SHA256));
    out.write_all(&header)?;
    sealed_hash.update(&header);
    let mut sealed_size = header.len() as u64;
    let mut plain_size = 0u64;
    let mut buf = zeroize::Zeroizing::new(vec![0u8; CHUNK + TAG_LEN]);
    let mut index = 0u32;
    loop {
        let n = read_full(&mut input, buf.get_mut(..CHUNK).unwrap_or_default())?;
        let last = n < CHUNK || input.fill_buf()?.is_empty();
        let chunk = buf.get_mut(..n).unwrap_or_default();
        plain_hash.update(chunk);
        let tag = key
            .seal_in_place_separate_tag(nonce(&prefix, index, last)?, Aad::from(&aad), chunk)
            .map_err(|_| SealError::Changed)?;
        out.write_all(chunk)?;
        out.write_all(tag.as_ref())?;
        sealed_hash.update(chunk);
        sealed_hash.update(tag.as_ref());
        plain_size += n as u64;
        sealed_size += (n + TAG_LEN) as u64;
        progress(plain_size);
        if last {
            break;
        }
        index = index
            .checked_add(1)
            .ok_or_else(|| std::io::Error::other("the file is too large to seal"))?;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(Digests {
        plain_size,
        plain_sha256: digest(plain_hash),
        sealed_size,
        sealed_sha256: digest(sealed_hash),
    })
}

/// Opens the sealed file `src`, writing the plaintext to a new file `dst` (owner-only), or
/// only checking it when `dst` is `None`. `progress` is told the sealed bytes read.
pub fn open_file(
    raw_key: &[u8; 32],
    context: &[u8],
    src: &Path,
    dst: Option<&Path>,
    mut progress: impl FnMut(u64),
) -> Result<Digests, SealError> {
    use std::os::unix::fs::OpenOptionsExt;
    let key = key(raw_key)?;
    let mut input = BufReader::with_capacity(CHUNK + TAG_LEN, std::fs::File::open(src)?);
    let mut header = [0u8; HEADER_LEN];
    if read_full(&mut input, &mut header)? != HEADER_LEN || !header.starts_with(MAGIC) {
        return Err(SealError::Changed);
    }
    let prefix = header
        .get(MAGIC.len()..MAGIC.len() + PREFIX_LEN)
        .unwrap_or_default()
        .to_vec();
    let chunk_size = header
        .get(MAGIC.len() + PREFIX_LEN..)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (1..=(64 << 20)).contains(n))
        .ok_or(SealError::Changed)?;
    let mut aad = header.to_vec();
    aad.extend_from_slice(context);
    let mut out = match dst {
        Some(p) => Some(BufWriter::with_capacity(
            CHUNK,
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)?,
        )),
        None => None,
    };
    let (mut plain_hash, mut sealed_hash) = (Context::new(&SHA256), Context::new(&SHA256));
    sealed_hash.update(&header);
    let mut sealed_size = HEADER_LEN as u64;
    let mut plain_size = 0u64;
    let mut buf = zeroize::Zeroizing::new(vec![0u8; chunk_size + TAG_LEN]);
    let mut index = 0u32;
    loop {
        let n = read_full(&mut input, &mut buf)?;
        let last = n < buf.len() || input.fill_buf()?.is_empty();
        if n < TAG_LEN {
            return Err(SealError::Changed);
        }
        let chunk = buf.get_mut(..n).unwrap_or_default();
        sealed_hash.update(chunk);
        sealed_size += n as u64;
        let plain = key
            .open_in_place(nonce(&prefix, index, last)?, Aad::from(&aad), chunk)
            .map_err(|_| SealError::Changed)?;
        plain_hash.update(plain);
        plain_size += plain.len() as u64;
        if let Some(out) = out.as_mut() {
            out.write_all(plain)?;
        }
        progress(sealed_size);
        if last {
            break;
        }
        index = index.checked_add(1).ok_or(SealError::Changed)?;
    }
    if let Some(out) = out {
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
    }
    Ok(Digests {
        plain_size,
        plain_sha256: digest(plain_hash),
        sealed_size,
        sealed_sha256: digest(sealed_hash),
    })
}

/// SHA-256 of a file, streamed.
#[cfg(test)]
pub fn sha256_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut input = BufReader::with_capacity(CHUNK, std::fs::File::open(path)?);
    let mut c = Context::new(&SHA256);
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        c.update(buf);
        let n = buf.len();
        input.consume(n);
    }
    Ok(digest(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "tillit-seal-{}-{}",
            std::process::id(),
            tillit_core::PersonId::random()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn roundtrip(len: usize) {
        let d = tmp();
        let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(d.join("p"), &plain).unwrap();
        let k = [9u8; 32];
        let sealed = seal_file(&k, b"ctx", &d.join("p"), &d.join("s"), |_| {}).unwrap();
        assert_eq!(sealed.plain_size, len as u64);
        assert_eq!(sealed.sealed_sha256, sha256_file(&d.join("s")).unwrap());
        let opened = open_file(&k, b"ctx", &d.join("s"), Some(&d.join("o")), |_| {}).unwrap();
        assert_eq!(opened, sealed);
        assert_eq!(std::fs::read(d.join("o")).unwrap(), plain);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn files_of_any_size_round_trip() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 17] {
            roundtrip(len);
        }
    }

    #[test]
    fn a_changed_truncated_or_moved_file_does_not_open() {
        let d = tmp();
        let plain = vec![7u8; 2 * CHUNK + 5];
        std::fs::write(d.join("p"), &plain).unwrap();
        let k = [3u8; 32];
        seal_file(&k, b"a", &d.join("p"), &d.join("s"), |_| {}).unwrap();
        let sealed = std::fs::read(d.join("s")).unwrap();
        let check = |bytes: &[u8], ctx: &[u8]| {
            std::fs::write(d.join("x"), bytes).unwrap();
            open_file(&k, ctx, &d.join("x"), None, |_| {})
        };
        assert!(check(&sealed, b"a").is_ok());
        // Another context (file path or backup).
        assert!(matches!(check(&sealed, b"b"), Err(SealError::Changed)));
        // One bit flipped anywhere.
        for at in [3, HEADER_LEN + 10, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            assert!(matches!(check(&bad, b"a"), Err(SealError::Changed)), "{at}");
        }
        // Cut at a chunk boundary, or anywhere.
        let boundary = HEADER_LEN + 2 * (CHUNK + TAG_LEN);
        assert!(matches!(
            check(&sealed[..boundary], b"a"),
            Err(SealError::Changed)
        ));
        assert!(matches!(
            check(&sealed[..sealed.len() - 3], b"a"),
            Err(SealError::Changed)
        ));
        // Chunks swapped.
        let c = CHUNK + TAG_LEN;
        let mut swapped = sealed[..HEADER_LEN].to_vec();
        swapped.extend_from_slice(&sealed[HEADER_LEN + c..HEADER_LEN + 2 * c]);
        swapped.extend_from_slice(&sealed[HEADER_LEN..HEADER_LEN + c]);
        swapped.extend_from_slice(&sealed[HEADER_LEN + 2 * c..]);
        assert!(matches!(check(&swapped, b"a"), Err(SealError::Changed)));
        // Another key.
        std::fs::write(d.join("x"), &sealed).unwrap();
        assert!(open_file(&[4u8; 32], b"a", &d.join("x"), None, |_| {}).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
