//! Length-prefixed frames, wire-compatible with Python's
//! `multiprocessing.connection`.
//!
//! A frame is a 4-byte big-endian signed length and the payload. Payloads of
//! 2³¹ bytes or more use the long form: the 4-byte value `-1`, then an 8-byte
//! big-endian unsigned length. Every length is checked against the
//! connection's maximum message size *before* anything is allocated, and a
//! payload is read into a buffer that grows with the bytes that actually
//! arrive, so a peer that claims a huge frame and stalls costs nothing.
//!
//! [`FrameReader`] is the decoder. It reads from any [`Source`], which is how
//! the fuzz target and the tests drive it with in-memory input.

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::time::Instant;

/// The default maximum size of one message in Rust: 1 GiB (Python's
/// bindings set no limit, as `multiprocessing` has none). A frame's memory
/// grows with the bytes that arrive, so a hostile length prefix alone
/// allocates nothing; the limit bounds what one peer can make this side
/// hold.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 30;

/// The largest header (`-1` marker + 8-byte length).
pub const MAX_HEADER_LEN: usize = 12;

/// A frame that could not be decoded. The connection is unusable after one of
/// these: it never tries to resynchronize inside payload bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A length prefix below zero other than the long-form marker `-1`.
    #[error("frame length prefix is negative ({0})")]
    NegativeLength(i32),
    /// A length above the connection's maximum message size.
    #[error("frame of {len} bytes exceeds the maximum message size of {max} bytes")]
    TooLarge {
        /// The length the peer claimed.
        len: u64,
        /// The connection's maximum.
        max: usize,
    },
    /// End of file in the middle of a frame.
    #[error("connection closed in the middle of a frame ({received} of {expected} bytes)")]
    Truncated {
        /// Header plus payload bytes the frame should have had (as far as known).
        expected: u64,
        /// Bytes that arrived before end of file.
        received: u64,
    },
}

/// Decode a frame header at the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, otherwise
/// `(header length, payload length)`.
pub fn parse_header(buf: &[u8], max: usize) -> Result<Option<(usize, usize)>, FrameError> {
    let Some(short) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let n = i32::from_be_bytes(*short);
    let (header, len) = match n {
        0.. => (4, n.unsigned_abs().into()),
        -1 => {
            let Some(long) = buf.get(4..12) else {
                return Ok(None);
            };
            let long: [u8; 8] = long.try_into().expect("slice of 8");
            (12, u64::from_be_bytes(long))
        }
        _ => return Err(FrameError::NegativeLength(n)),
    };
    match usize::try_from(len) {
        Ok(len) if len <= max => Ok(Some((header, len))),
        _ => Err(FrameError::TooLarge { len, max }),
    }
}

/// Write the header for a payload of `len` bytes into `out`; returns the
/// header's bytes.
pub fn encode_header(len: usize, out: &mut [u8; MAX_HEADER_LEN]) -> &[u8] {
    match i32::try_from(len) {
        Ok(n) => {
            out[..4].copy_from_slice(&n.to_be_bytes());
            &out[..4]
        }
        Err(_) => {
            out[..4].copy_from_slice(&(-1i32).to_be_bytes());
            out[4..12].copy_from_slice(&(len as u64).to_be_bytes());
            &out[..12]
        }
    }
}

/// The most bytes `zero_fill` initializes per call, so a source that
/// returns little per read does not pay for zeroing a whole large payload
/// each time.
pub const ZERO_FILL_WINDOW: usize = 256 << 10;

/// Zero the first [`ZERO_FILL_WINDOW`] bytes of `buf` and view them as
/// initialized bytes.
pub(crate) fn zero_fill(buf: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    let len = buf.len().min(ZERO_FILL_WINDOW);
    let buf = &mut buf[..len];
    for b in buf.iter_mut() {
        b.write(0);
    }
    // SAFETY: every element was just initialized, and `MaybeUninit<u8>` has
    // the layout of `u8`.
    unsafe { &mut *(buf as *mut [MaybeUninit<u8>] as *mut [u8]) }
}

/// What a [`Source`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// This many bytes were read.
    Data(usize),
    /// End of file.
    Eof,
    /// The deadline passed with nothing to read.
    TimedOut,
}

/// A byte stream that may carry file descriptors.
///
/// # Safety
///
/// When [`fill_uninit`](Source::fill_uninit) returns `Fill::Data(n)`, the
/// first `n` bytes of its buffer must have been initialized (the decoder
/// then treats them as initialized bytes).
pub unsafe trait Source {
    /// Read into `buf`, waiting until `deadline` (`None`: forever); append any
    /// descriptors that arrive to `fds`.
    fn fill(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
        fds: &mut VecDeque<OwnedFd>,
    ) -> io::Result<Fill>;

    /// [`fill`](Source::fill) into uninitialized memory, for large payloads.
    /// The default zeroes (at most [`ZERO_FILL_WINDOW`] bytes of) `buf` first.
    fn fill_uninit(
        &mut self,
        buf: &mut [MaybeUninit<u8>],
        deadline: Option<Instant>,
        fds: &mut VecDeque<OwnedFd>,
    ) -> io::Result<Fill> {
        self.fill(zero_fill(buf), deadline, fds)
    }
}

/// Why [`FrameReader::read_frame`] returned no frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// End of file at a frame boundary.
    #[error("end of file")]
    Eof,
    /// The deadline passed; a partly read frame is kept for the next call.
    #[error("timed out")]
    TimedOut,
    /// The stream is malformed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The OS reported an error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A decoded payload: borrowed from the reader's buffer when it fit there,
/// owned when it was read out of line.
#[derive(Debug)]
pub enum Payload<'a> {
    /// Valid until the next call on the reader.
    Borrowed(&'a [u8]),
    /// A large payload that was read into its own buffer.
    Owned(Vec<u8>),
}

impl Payload<'_> {
    /// The payload's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::Owned(v) => v,
        }
    }

    /// The payload as an owned vector (a copy when borrowed).
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Payload::Borrowed(b) => b.to_vec(),
            Payload::Owned(v) => v,
        }
    }
}

const BUF_SIZE: usize = 64 << 10;
/// Payloads above this are read out of line rather than through the buffer.
const INLINE_MAX: usize = BUF_SIZE / 2;

/// A payload being read out of line: `data` holds what has arrived, its
/// capacity grows with the bytes that actually come in.
#[derive(Debug)]
struct Pending {
    data: Vec<u8>,
    len: usize,
    header: usize,
}

/// The frame decoder: buffered reads, at most one read per call when frames
/// are small, large payloads read straight into their own buffer.
#[derive(Debug)]
pub struct FrameReader {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    pending: Option<Pending>,
    /// A large payload buffer handed back after use, for the next large frame.
    spare: Vec<u8>,
    max: usize,
    /// Stream bytes of the frames returned so far (the next frame's start).
    taken: u64,
}

impl FrameReader {
    /// Hand back the buffer of an out-of-line payload that has been consumed,
    /// so the next large frame reuses its memory instead of allocating.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > self.spare.capacity() {
            buf.clear();
            self.spare = buf;
        }
    }

    /// A reader that refuses frames above `max` bytes.
    pub fn new(max: usize) -> Self {
        FrameReader {
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
            pending: None,
            spare: Vec::new(),
            max,
            taken: 0,
        }
    }

    /// The stream offset (bytes since the first) at which the next frame
    /// [`read_frame`](Self::read_frame) returns begins: what a reader needs
    /// to tell which received descriptors came with that frame.
    pub fn next_frame_start(&self) -> u64 {
        self.taken
    }

    /// The maximum payload size.
    pub fn max_message_size(&self) -> usize {
        self.max
    }

    /// Change the maximum payload size for frames not yet started.
    pub fn set_max_message_size(&mut self, max: usize) {
        self.max = max;
    }

    /// Whether bytes are buffered (a frame, or part of one, has arrived).
    pub fn has_buffered(&self) -> bool {
        self.start < self.end || self.pending.is_some()
    }

    /// Whether a whole frame is buffered, so the next read cannot block.
    pub fn has_complete_frame(&self) -> bool {
        if self.pending.is_some() {
            return false;
        }
        match parse_header(&self.buf[self.start..self.end], self.max) {
            Ok(Some((h, len))) => self.end - self.start >= h + len,
            Ok(None) => false,
            Err(_) => true, // the error is ready to be reported
        }
    }

    /// Read the next frame's payload.
    pub fn read_frame<S: Source + ?Sized>(
        &mut self,
        src: &mut S,
        deadline: Option<Instant>,
        fds: &mut VecDeque<OwnedFd>,
    ) -> Result<Payload<'_>, ReadError> {
        self.read_frame_spanned(src, deadline, fds).map(|(p, _)| p)
    }

    /// Read the next frame's payload, and the stream offset just past the
    /// frame (what [`next_frame_start`](Self::next_frame_start) says once
    /// the payload is dropped).
    pub fn read_frame_spanned<S: Source + ?Sized>(
        &mut self,
        src: &mut S,
        deadline: Option<Instant>,
        fds: &mut VecDeque<OwnedFd>,
    ) -> Result<(Payload<'_>, u64), ReadError> {
        if self.pending.is_none() {
            loop {
                if let Some((h, len)) = parse_header(&self.buf[self.start..self.end], self.max)? {
                    let have = self.end - self.start;
                    if have >= h + len {
                        self.taken += (h + len) as u64;
                        let at = self.start + h;
                        self.start += h + len;
                        if self.start == self.end {
                            self.start = 0;
                            self.end = 0;
                        }
                        return Ok((Payload::Borrowed(&self.buf[at..at + len]), self.taken));
                    }
                    if len > INLINE_MAX {
                        // Out of line: start with what is buffered; grow
                        // only as bytes arrive.
                        let got = have - h;
                        let mut data = std::mem::take(&mut self.spare);
                        data.reserve_exact(len.min(1 << 20).max(got));
                        data.extend_from_slice(&self.buf[self.start + h..self.end]);
                        self.start = 0;
                        self.end = 0;
                        self.pending = Some(Pending {
                            data,
                            len,
                            header: h,
                        });
                        break;
                    }
                }
                // Need more bytes in the buffer: compact, then read once.
                if self.start > 0 && self.end == self.buf.len() || self.start > BUF_SIZE / 2 {
                    self.buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                }
                match src.fill(&mut self.buf[self.end..], deadline, fds)? {
                    Fill::Data(n) => self.end += n,
                    Fill::TimedOut => return Err(ReadError::TimedOut),
                    Fill::Eof => {
                        if self.start == self.end {
                            return Err(ReadError::Eof);
                        }
                        let received = (self.end - self.start) as u64;
                        let expected = match parse_header(&self.buf[self.start..self.end], self.max)
                        {
                            Ok(Some((h, len))) => (h + len) as u64,
                            _ => MAX_HEADER_LEN as u64,
                        };
                        self.start = 0;
                        self.end = 0;
                        return Err(FrameError::Truncated { expected, received }.into());
                    }
                }
            }
        }
        let p = self.pending.as_mut().expect("pending frame");
        while p.data.len() < p.len {
            let filled = p.data.len();
            if p.data.capacity() == filled {
                // Double, from 1 MiB, never past the claimed length.
                p.data
                    .reserve_exact(filled.max(1 << 20).min(p.len - filled));
            }
            let want = (p.data.capacity() - filled).min(p.len - filled);
            let spare = &mut p.data.spare_capacity_mut()[..want];
            match src.fill_uninit(spare, deadline, fds)? {
                Fill::Data(n) => {
                    assert!(
                        n <= want,
                        "source reported more bytes than it was given room for"
                    );
                    // SAFETY: `Source`'s contract: `fill_uninit` initialized
                    // the first `n` bytes of the spare capacity, and
                    // `n <= want <= capacity - len`.
                    unsafe { p.data.set_len(filled + n) };
                }
                Fill::TimedOut => return Err(ReadError::TimedOut),
                Fill::Eof => {
                    let e = FrameError::Truncated {
                        expected: (p.header + p.len) as u64,
                        received: (p.header + filled) as u64,
                    };
                    self.pending = None;
                    return Err(e.into());
                }
            }
        }
        let p = self.pending.take().expect("pending frame");
        self.taken += (p.header + p.len) as u64;
        Ok((Payload::Owned(p.data), self.taken))
    }
}

/// An in-memory [`Source`] that hands out its bytes in the chunk sizes it is
/// given (for tests and the fuzz target).
#[derive(Debug)]
pub struct ChunkedSource<'a> {
    data: &'a [u8],
    chunks: Vec<usize>,
    next: usize,
}

impl<'a> ChunkedSource<'a> {
    /// A source over `data`, read in `chunks` sizes (cycled; 0 is read as 1).
    pub fn new(data: &'a [u8], chunks: Vec<usize>) -> Self {
        ChunkedSource {
            data,
            chunks,
            next: 0,
        }
    }
}

impl ChunkedSource<'_> {
    /// The next chunk: at most `room` bytes.
    fn take(&mut self, room: usize) -> &[u8] {
        let chunk = if self.chunks.is_empty() {
            usize::MAX
        } else {
            let c = self.chunks[self.next % self.chunks.len()].max(1);
            self.next += 1;
            c
        };
        let n = chunk.min(room).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
}

// SAFETY: `fill_uninit` writes every byte it reports (`write_copy_of_slice`
// semantics, done by hand).
unsafe impl Source for ChunkedSource<'_> {
    fn fill(
        &mut self,
        buf: &mut [u8],
        _deadline: Option<Instant>,
        _fds: &mut VecDeque<OwnedFd>,
    ) -> io::Result<Fill> {
        if self.data.is_empty() {
            return Ok(Fill::Eof);
        }
        let chunk = self.take(buf.len());
        buf[..chunk.len()].copy_from_slice(chunk);
        Ok(Fill::Data(chunk.len()))
    }

    fn fill_uninit(
        &mut self,
        buf: &mut [MaybeUninit<u8>],
        _deadline: Option<Instant>,
        _fds: &mut VecDeque<OwnedFd>,
    ) -> io::Result<Fill> {
        if self.data.is_empty() {
            return Ok(Fill::Eof);
        }
        let chunk = self.take(buf.len());
        for (dst, &src) in buf.iter_mut().zip(chunk) {
            dst.write(src);
        }
        Ok(Fill::Data(chunk.len()))
    }
}

/// Decode every frame of `data` (read in `chunks`) until end of file or the
/// first error; returns the payloads and how the stream ended. The fuzz
/// target and the corpus replay test call this.
pub fn decode_all(data: &[u8], chunks: Vec<usize>, max: usize) -> (Vec<Vec<u8>>, ReadError) {
    let mut src = ChunkedSource::new(data, chunks);
    let mut reader = FrameReader::new(max);
    let mut fds = VecDeque::new();
    let mut out = Vec::new();
    loop {
        match reader.read_frame(&mut src, None, &mut fds) {
            Ok(p) => out.push(p.into_vec()),
            Err(e) => return (out, e),
        }
    }
}

/// One fuzz input: the first byte picks how the stream is chunked, the rest
/// is the stream. Every frame decoded is also decoded as a serde message of a
/// sample type. Nothing may panic, hang, or allocate more than the bytes
/// given plus a constant. Shared by the `cargo fuzz` target and the corpus
/// replay test.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let chunks = match mode % 8 {
        0 => vec![],
        1 => vec![1],
        2 => vec![3, 1, 4, 1, 5],
        n => vec![usize::from(mode), usize::from(n) * 97],
    };
    let (frames, _end) = decode_all(stream, chunks, 1 << 20);
    for f in frames {
        if let Some((_count, body)) = f.split_first() {
            type Sample = (u32, String, Vec<u8>, Option<i64>, Vec<(bool, f64)>);
            let _ = crate::connection::codec::decode::<Sample>(body, Vec::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut h = [0; MAX_HEADER_LEN];
        let mut v = encode_header(payload.len(), &mut h).to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn header_forms() {
        assert_eq!(parse_header(&[0, 0, 0], 10), Ok(None));
        assert_eq!(parse_header(&[0, 0, 0, 5], 10), Ok(Some((4, 5))));
        assert_eq!(
            parse_header(&[0, 0, 0, 11], 10),
            Err(FrameError::TooLarge { len: 11, max: 10 })
        );
        assert_eq!(
            parse_header(&(-2i32).to_be_bytes(), 10),
            Err(FrameError::NegativeLength(-2))
        );
        let mut long = (-1i32).to_be_bytes().to_vec();
        assert_eq!(parse_header(&long, 10), Ok(None));
        long.extend_from_slice(&7u64.to_be_bytes());
        assert_eq!(parse_header(&long, 10), Ok(Some((12, 7))));
        let mut huge = (-1i32).to_be_bytes().to_vec();
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(
            parse_header(&huge, 1 << 40),
            Err(FrameError::TooLarge {
                len: u64::MAX,
                max: 1 << 40
            })
        );
    }

    #[test]
    fn long_form_is_encoded_above_i32_max() {
        let mut h = [0; MAX_HEADER_LEN];
        assert_eq!(encode_header(5, &mut h), &[0, 0, 0, 5]);
        let big = encode_header(1 << 31, &mut h).to_vec();
        assert_eq!(&big[..4], &(-1i32).to_be_bytes());
        assert_eq!(parse_header(&big, usize::MAX), Ok(Some((12, 1 << 31))));
    }

    #[test]
    fn frames_survive_any_chunking() {
        let payloads: Vec<Vec<u8>> = vec![
            vec![],
            b"hello".to_vec(),
            vec![7; 40_000],
            vec![9; 300_000],
            b"tail".to_vec(),
        ];
        let stream: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
        for chunks in [vec![], vec![1], vec![3, 7, 1], vec![4096], vec![65536, 5]] {
            let (out, end) = decode_all(&stream, chunks, 1 << 20);
            assert_eq!(out, payloads);
            assert!(matches!(end, ReadError::Eof));
        }
    }

    #[test]
    fn eof_inside_header_or_payload_is_truncated() {
        let stream = frame(b"hello world");
        for cut in 1..stream.len() {
            let (out, end) = decode_all(&stream[..cut], vec![2], 1 << 20);
            assert!(out.is_empty());
            match end {
                ReadError::Frame(FrameError::Truncated { received, .. }) => {
                    assert_eq!(received, cut as u64)
                }
                e => panic!("cut {cut}: {e:?}"),
            }
        }
        let big = frame(&vec![1; 100_000]);
        let (_, end) = decode_all(&big[..50_000], vec![], 1 << 20);
        assert!(matches!(
            end,
            ReadError::Frame(FrameError::Truncated {
                expected: 100_004,
                received: 50_000
            })
        ));
    }

    #[test]
    fn oversize_claim_allocates_nothing_big() {
        // Claims 1 GiB, sends 10 bytes: refused before allocation when over
        // the maximum, and read incrementally when under it.
        let mut s = (1i32 << 30).to_be_bytes().to_vec();
        s.extend_from_slice(&[0; 10]);
        let (_, end) = decode_all(&s, vec![], 1 << 20);
        assert!(matches!(end, ReadError::Frame(FrameError::TooLarge { .. })));
        let (_, end) = decode_all(&s, vec![], usize::MAX);
        assert!(matches!(
            end,
            ReadError::Frame(FrameError::Truncated { .. })
        ));
    }
}
