//! Decoding compressed data under caps: each stream stops at [`MAX_STREAM_BYTES`] and each
//! document at its [`Budget`], so a zip or flate bomb costs at most those bytes of memory
//! and time before it is refused, however well it compresses.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::{Condvar, Mutex, PoisonError};

use flate2::read::ZlibDecoder;

use super::limits::{MAX_DOCUMENT_DECODED_BYTES, MAX_STREAM_BYTES};

const MIB: u64 = 1024 * 1024;

/// Which cap decoding ran into; the message names it, for the task's failure reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeLimit {
    /// One stream or entry decodes past [`MAX_STREAM_BYTES`].
    #[error("a compressed stream decodes to more than {} MiB (the per-stream cap)", MAX_STREAM_BYTES / MIB)]
    Stream,
    /// The document's streams together decode past the document's budget.
    #[error("its compressed data decodes to more than {} MiB in total (the per-document cap)", .0 / MIB)]
    Document(u64),
}

/// Decoded bytes left for one document; shared by every stream and stage decoded for it.
#[derive(Debug)]
pub struct Budget {
    used: Cell<u64>,
    limit: u64,
}

impl Budget {
    /// A budget of `limit` decoded bytes.
    pub fn new(limit: u64) -> Self {
        Self {
            used: Cell::new(0),
            limit,
        }
    }

    /// The default per-document budget, [`MAX_DOCUMENT_DECODED_BYTES`].
    pub fn document() -> Self {
        Self::new(MAX_DOCUMENT_DECODED_BYTES)
    }

    /// Counts `bytes` more, failing once the total passes the limit.
    fn spend(&self, bytes: u64) -> Result<(), DecodeLimit> {
        let used = self.used.get().saturating_add(bytes);
        self.used.set(used);
        if used > self.limit {
            return Err(DecodeLimit::Document(self.limit));
        }
        Ok(())
    }
}

/// A writer that counts (and, if asked, keeps) what is written, failing past the per-stream
/// cap or the document's budget; decoders write into it so every format is capped alike.
struct CappedSink<'b> {
    budget: &'b Budget,
    written: u64,
    kept: Option<Vec<u8>>,
    hit: Option<DecodeLimit>,
}

impl<'b> CappedSink<'b> {
    fn new(budget: &'b Budget, keep: bool) -> Self {
        Self {
            budget,
            written: 0,
            kept: keep.then(Vec::new),
            hit: None,
        }
    }
}

impl Write for CappedSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len() as u64;
        let check = if self.written.saturating_add(n) > MAX_STREAM_BYTES {
            Err(DecodeLimit::Stream)
        } else {
            self.budget.spend(n)
        };
        if let Err(limit) = check {
            self.hit = Some(limit);
            return Err(io::Error::other(limit));
        }
        self.written += n;
        if let Some(kept) = self.kept.as_mut() {
            kept.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads all of `reader` (an inflating zip entry, say) into memory under the caps; an I/O
/// error that is not a cap is returned as is, for the format to describe.
pub fn read_capped(mut reader: impl Read, budget: &Budget) -> Result<Vec<u8>, ReadError> {
    let mut sink = CappedSink::new(budget, true);
    match io::copy(&mut reader, &mut sink) {
        Ok(_) => Ok(sink.kept.unwrap_or_default()),
        Err(err) => Err(match sink.hit {
            Some(limit) => ReadError::Limit(limit),
            None => ReadError::Io(err),
        }),
    }
}

/// Why [`read_capped`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A cap.
    #[error(transparent)]
    Limit(DecodeLimit),
    /// The data itself (a corrupt entry).
    #[error(transparent)]
    Io(io::Error),
}

/// A PDF stream's data decoded through `filters` (in decoding order) under the caps.
/// Filters lopdf does not decode end the chain (it then uses the bytes as they are), and
/// corrupt data keeps what decoded before the error, as lopdf does.
pub fn pdf_decode<F: AsRef<[u8]>>(
    filters: &[F],
    input: &[u8],
    budget: &Budget,
) -> Result<Vec<u8>, DecodeLimit> {
    let mut owned: Option<Vec<u8>> = None;
    for filter in filters {
        let data = owned.as_deref().unwrap_or(input);
        let mut sink = CappedSink::new(budget, true);
        match filter.as_ref() {
            b"FlateDecode" => {
                let _ = io::copy(&mut ZlibDecoder::new(data), &mut sink);
            }
            b"LZWDecode" => {
                let mut decoder =
                    weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
                let _ = decoder.into_stream(&mut sink).decode_all(data).status;
            }
            b"ASCII85Decode" => {
                let _ = ascii85(data, &mut sink);
            }
            _ => break,
        }
        if let Some(limit) = sink.hit {
            return Err(limit);
        }
        owned = sink.kept;
    }
    Ok(owned.unwrap_or_else(|| input.to_vec()))
}

/// How many zlib layers a blind scan unwraps: real PDFs use one, bombs nest a few.
const BLIND_NESTING: usize = 4;

/// Inflates `data` as zlib if it looks like zlib, again while the output does too (up to
/// [`BLIND_NESTING`] layers), counting every layer against the caps and keeping nothing.
/// For data whose filters are not known yet (raw PDF bytes before parsing).
pub fn check_blind_zlib(data: &[u8], budget: &Budget) -> Result<(), DecodeLimit> {
    if !looks_like_zlib(data) {
        return Ok(());
    }
    let mut reader: Box<dyn BufRead + '_> =
        Box::new(BufReader::new(Counted::new(ZlibDecoder::new(data), budget)));
    for _ in 1..BLIND_NESTING {
        match reader.fill_buf() {
            Ok(head) if looks_like_zlib(head) => {
                reader = Box::new(BufReader::new(Counted::new(
                    ZlibDecoder::new(reader),
                    budget,
                )));
            }
            _ => break,
        }
    }
    match io::copy(&mut reader, &mut io::sink()) {
        Err(err) => match err.get_ref().and_then(|e| e.downcast_ref::<DecodeLimit>()) {
            Some(limit) => Err(*limit),
            // Not zlib after all, or corrupt: lopdf keeps what decodes, already counted.
            None => Ok(()),
        },
        Ok(_) => Ok(()),
    }
}

/// A zlib header: deflate with a window of at most 32 KiB and a valid check value.
fn looks_like_zlib(head: &[u8]) -> bool {
    match head {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// A reader counting what passes through against the per-stream cap and the budget.
struct Counted<'b, R> {
    inner: R,
    read: u64,
    budget: &'b Budget,
}

impl<'b, R> Counted<'b, R> {
    fn new(inner: R, budget: &'b Budget) -> Self {
        Self {
            inner,
            read: 0,
            budget,
        }
    }
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read = self.read.saturating_add(n as u64);
        if self.read > MAX_STREAM_BYTES {
            return Err(io::Error::other(DecodeLimit::Stream));
        }
        self.budget.spend(n as u64).map_err(io::Error::other)?;
        Ok(n)
    }
}

/// ASCII base-85 (PDF's `ASCII85Decode`): four bytes per five characters, `z` for four
/// zeros, `~>` at the end. No crate in the tree decodes it into a writer.
fn ascii85(input: &[u8], out: &mut impl Write) -> io::Result<()> {
    let mut tuple: u32 = 0;
    let mut count = 0usize;
    for &byte in input {
        match byte {
            b'~' => break,
            b'z' if count == 0 => out.write_all(&[0; 4])?,
            b'!'..=b'u' => {
                tuple = tuple.wrapping_mul(85).wrapping_add(u32::from(byte - b'!'));
                count += 1;
                if count == 5 {
                    out.write_all(&tuple.to_be_bytes())?;
                    tuple = 0;
                    count = 0;
                }
            }
            byte if byte.is_ascii_whitespace() => {}
            _ => break,
        }
    }
    if count > 1 {
        for _ in count..5 {
            tuple = tuple.wrapping_mul(85).wrapping_add(84);
        }
        out.write_all(&tuple.to_be_bytes()[..count - 1])?;
    }
    Ok(())
}

/// A counting semaphore for blocking threads (extraction runs on the blocking pool), so a
/// format can bound how many documents inflate at once; std has none and tokio's needs an
/// async context.
#[derive(Debug)]
pub struct Permits {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Permits {
    /// `permits` slots.
    pub const fn new(permits: usize) -> Self {
        Self {
            free: Mutex::new(permits),
            freed: Condvar::new(),
        }
    }

    /// Waits for a slot; it is given back when the [`Permit`] drops (panics included).
    pub fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        Permit(self)
    }
}

/// One slot of [`Permits`], held while decoding.
#[derive(Debug)]
pub struct Permit<'a>(&'a Permits);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(PoisonError::into_inner);
        *free += 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::ZlibEncoder;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        let _ = encoder.write_all(data);
        encoder.finish().unwrap_or_default()
    }

    /// Zeros compressed twice: a few KB that inflate to `bytes`.
    fn nested_bomb(bytes: usize) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        let chunk = vec![0u8; 1024 * 1024];
        for _ in 0..bytes / chunk.len() {
            let _ = encoder.write_all(&chunk);
        }
        zlib(&encoder.finish().unwrap_or_default())
    }

    #[test]
    fn ordinary_streams_decode_to_their_length() {
        let budget = Budget::document();
        let data = b"BT (Hello) Tj ET".repeat(100);
        assert_eq!(
            pdf_decode(&[b"FlateDecode"], &zlib(&data), &budget).as_ref(),
            Ok(&data)
        );
        let twice = zlib(&zlib(&data));
        assert_eq!(
            pdf_decode(&[&b"FlateDecode"[..], b"FlateDecode"], &twice, &budget).as_ref(),
            Ok(&data)
        );
        assert_eq!(
            pdf_decode::<&[u8]>(&[], b"raw", &budget),
            Ok(b"raw".to_vec())
        );
        assert_eq!(check_blind_zlib(&twice, &budget), Ok(()));
        assert_eq!(check_blind_zlib(b"not zlib at all", &budget), Ok(()));
        let mut out = Vec::new();
        assert!(ascii85(b"87cURD]i,\"Ebo80~>", &mut out).is_ok());
        assert_eq!(out, b"Hello World!");
    }

    #[test]
    fn a_nested_flate_bomb_stops_at_the_stream_cap() {
        let bomb = nested_bomb(256 * 1024 * 1024);
        assert!(bomb.len() < 100_000, "{} bytes", bomb.len());
        let budget = Budget::document();
        let result = pdf_decode(&[&b"FlateDecode"[..], b"FlateDecode"], &bomb, &budget);
        assert_eq!(result, Err(DecodeLimit::Stream));
        let blind = check_blind_zlib(&bomb, &Budget::document());
        assert_eq!(blind, Err(DecodeLimit::Stream));
        assert!(DecodeLimit::Stream.to_string().contains("64 MiB"));
    }

    #[test]
    fn many_streams_stop_at_the_document_budget() {
        let stream = zlib(&vec![0u8; 8 * 1024 * 1024]);
        let budget = Budget::new(20 * 1024 * 1024);
        assert!(pdf_decode(&[b"FlateDecode"], &stream, &budget).is_ok());
        assert!(check_blind_zlib(&stream, &budget).is_ok());
        let third = pdf_decode(&[b"FlateDecode"], &stream, &budget);
        assert_eq!(third, Err(DecodeLimit::Document(20 * 1024 * 1024)));
        assert!(
            third
                .err()
                .is_some_and(|e| e.to_string().contains("20 MiB"))
        );
    }

    #[test]
    fn read_capped_refuses_a_bomb() {
        let bomb = zlib(&vec![0u8; 100 * 1024 * 1024]);
        let result = read_capped(ZlibDecoder::new(&bomb[..]), &Budget::document());
        assert!(
            matches!(result, Err(ReadError::Limit(DecodeLimit::Stream))),
            "{result:?}"
        );
    }

    #[test]
    fn permits_bound_concurrency() {
        static PERMITS: Permits = Permits::new(1);
        let first = PERMITS.acquire();
        let handle = std::thread::spawn(|| drop(PERMITS.acquire()));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!handle.is_finished());
        drop(first);
        assert!(handle.join().is_ok());
    }
}
