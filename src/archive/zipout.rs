//! The zip writer of archives. The zip crate's writer keeps every entry's central-directory
//! record in memory until `finish` (hundreds of bytes an entry: tens of MB at 200,000
//! versions, ten times that at two million), and an archive build must stay in flat memory
//! whatever its size. This writer puts each central record into a temporary file as its
//! entry is added and copies them in at the end.
//!
//! Sizes and CRCs are in the local headers (no data descriptors, which some readers mishandle):
//! an entry whose bytes arrive in pieces has its header rewritten in place once they are all
//! in, so the output must be seekable. zip64 fields appear only where a value overflows its
//! 32-bit field, and the zip64 end record only past 65,534 entries or 4 GiB.

use crc32fast::Hasher;
use flate2::{Compress, Compression, FlushCompress, Status};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

const LOCAL: u32 = 0x0403_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;
const END64: u32 = 0x0606_4b50;
const LOCATOR64: u32 = 0x0706_4b50;
/// General purpose bit 11: the name is UTF-8.
const UTF8: u16 = 1 << 11;
/// Made by Unix (3), to version 6.3 of the specification (so external attributes are modes).
const MADE_BY: u16 = (3 << 8) | 63;
const MAX32: u64 = 0xFFFF_FFFF;
/// A streamed entry at least this large gets zip64 sizes in its local header, which must be
/// reserved before its bytes (and its compressed size) are known.
pub const LARGE: u64 = 0xF000_0000;
/// Deflate level: Info-ZIP's default.
const LEVEL: u32 = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Stored,
    Deflated,
}

impl Method {
    fn code(self) -> u16 {
        match self {
            Method::Stored => 0,
            Method::Deflated => 8,
        }
    }
}

/// An entry's name and header fields.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub method: Method,
    pub modified: chrono::DateTime<chrono::Utc>,
}

impl Entry {
    /// MS-DOS date and time (local headers have no zone; UTC is what the manifest says too).
    fn dos(&self) -> (u16, u16) {
        use chrono::{Datelike, Timelike};
        let t = self.modified;
        zip::DateTime::from_date_and_time(
            t.year().clamp(1980, 2107) as u16,
            t.month() as u8,
            t.day() as u8,
            t.hour() as u8,
            t.minute() as u8,
            t.second() as u8,
        )
        .map(|d| (d.datepart(), d.timepart()))
        .unwrap_or((0x21, 0))
    }
}

/// An entry's bytes already compressed (or stored), with what its headers say of them.
#[derive(Debug)]
pub struct Prepared {
    pub entry: Entry,
    pub crc: u32,
    pub size: u64,
    pub data: Vec<u8>,
}

/// Reuses one deflate state for many small entries (a fresh state is a few hundred KB).
pub struct Deflater {
    c: Compress,
    out: Vec<u8>,
}

impl Default for Deflater {
    fn default() -> Self {
        Deflater { c: Compress::new(Compression::new(LEVEL), false), out: Vec::new() }
    }
}

impl Deflater {
    /// `data` as an entry: deflated, or stored when deflate would not make it smaller.
    pub fn prepare(&mut self, entry: Entry, data: &[u8]) -> io::Result<Prepared> {
        self.c.reset();
        self.out.clear();
        deflate(&mut self.c, data, FlushCompress::Finish, &mut self.out)?;
        let crc = crc32fast::hash(data);
        let size = data.len() as u64;
        if self.out.len() < data.len() {
            Ok(Prepared { entry: Entry { method: Method::Deflated, ..entry }, crc, size, data: self.out.clone() })
        } else {
            Ok(Prepared { entry: Entry { method: Method::Stored, ..entry }, crc, size, data: data.to_vec() })
        }
    }
}

/// Feeds `input` to `c`, appending what comes out to `out`; returns when the input is taken
/// and, for a flush, everything it asked for is out.
fn deflate(c: &mut Compress, mut input: &[u8], flush: FlushCompress, out: &mut Vec<u8>) -> io::Result<()> {
    loop {
        if out.capacity() - out.len() < 1 << 14 {
            out.reserve((input.len() / 2).max(1 << 16));
        }
        let before = c.total_in();
        let status = c.compress_vec(input, out, flush).map_err(io::Error::other)?;
        input = &input[(c.total_in() - before) as usize..];
        let room_left = out.len() < out.capacity();
        match (flush, status) {
            (_, Status::StreamEnd) => return Ok(()),
            (FlushCompress::Finish, _) => {}
            _ if input.is_empty() && room_left => return Ok(()),
            _ => {}
        }
    }
}

/// One deflate stream's worth of an entry: its input's CRC and sizes.
pub struct Segment {
    crc: Hasher,
    size: u64,
    csize: u64,
}

/// Text deflated as it is written, for an entry added at the end (the manifest, the index),
/// the compressed bytes going to `out` (a temporary file). A segment ends with a sync flush
/// and no final block, so that segments deflated apart concatenate into one stream (as pigz
/// does): the manifest's opening, known only at the end, is deflated then and put first.
pub struct Deflating<W: Write> {
    c: Compress,
    crc: Hasher,
    size: u64,
    csize: u64,
    buf: Vec<u8>,
    out: W,
}

impl<W: Write> Deflating<W> {
    pub fn new(out: W) -> Self {
        Deflating {
            c: Compress::new(Compression::new(LEVEL), false),
            crc: Hasher::new(),
            size: 0,
            csize: 0,
            buf: Vec::with_capacity(1 << 16),
            out,
        }
    }

    fn drain(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.csize += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Ends the segment: `last` ends the whole stream.
    pub fn end(mut self, last: bool) -> io::Result<(W, Segment)> {
        let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
        deflate(&mut self.c, &[], flush, &mut self.buf)?;
        self.drain()?;
        self.out.flush()?;
        Ok((self.out, Segment { crc: self.crc, size: self.size, csize: self.csize }))
    }
}

impl<W: Write> Write for Deflating<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.crc.update(b);
        self.size += b.len() as u64;
        deflate(&mut self.c, b, FlushCompress::None, &mut self.buf)?;
        if self.buf.len() >= 1 << 16 {
            self.drain()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `data` deflated as one segment (see `Deflating`).
pub fn deflate_segment(data: &[u8], last: bool) -> io::Result<(Vec<u8>, Segment)> {
    let mut d = Deflating::new(Vec::new());
    d.write_all(data)?;
    d.end(last)
}

/// Segments in the order their bytes are concatenated: the entry's CRC and sizes.
pub fn join(segments: &[&Segment]) -> (u32, u64, u64) {
    let mut crc = Hasher::new();
    let (mut size, mut csize) = (0, 0);
    for s in segments {
        crc.combine(&s.crc);
        size += s.size;
        csize += s.csize;
    }
    (crc.finalize(), size, csize)
}

/// An entry whose bytes are arriving.
struct Open {
    entry: Entry,
    offset: u64,
    zip64: bool,
    crc: Hasher,
    size: u64,
    csize: u64,
    deflate: Option<(Compress, Vec<u8>)>,
}

pub struct ZipOut<W: Write + Seek> {
    out: W,
    pos: u64,
    central: BufWriter<File>,
    entries: u64,
    open: Option<Open>,
}

fn put16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn name_len(name: &str) -> io::Result<u16> {
    u16::try_from(name.len()).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("a zip entry's name is over 65,535 bytes: {name:.80}..."))
    })
}

/// A local header; with `zip64`, the sizes are in the zip64 extra field.
fn local_header(e: &Entry, crc: u32, size: u64, csize: u64, zip64: bool) -> io::Result<Vec<u8>> {
    let (date, time) = e.dos();
    let mut b = Vec::with_capacity(30 + e.name.len() + 20);
    put32(&mut b, LOCAL);
    put16(&mut b, if zip64 { 45 } else { 20 });
    put16(&mut b, UTF8);
    put16(&mut b, e.method.code());
    put16(&mut b, time);
    put16(&mut b, date);
    put32(&mut b, crc);
    if zip64 {
        put32(&mut b, MAX32 as u32);
        put32(&mut b, MAX32 as u32);
    } else {
        put32(&mut b, csize as u32);
        put32(&mut b, size as u32);
    }
    put16(&mut b, name_len(&e.name)?);
    put16(&mut b, if zip64 { 20 } else { 0 });
    b.extend_from_slice(e.name.as_bytes());
    if zip64 {
        put16(&mut b, 0x0001);
        put16(&mut b, 16);
        put64(&mut b, size);
        put64(&mut b, csize);
    }
    Ok(b)
}

impl<W: Write + Seek> ZipOut<W> {
    /// A zip written into `out` from its current position 0; `central` is a temporary file
    /// for the central directory.
    pub fn new(out: W, central: File) -> Self {
        ZipOut { out, pos: 0, central: BufWriter::with_capacity(1 << 16, central), entries: 0, open: None }
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Whether an entry's bytes are still arriving (its header is not final).
    pub fn in_entry(&self) -> bool {
        self.open.is_some()
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    fn emit(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn central_record(
        &mut self,
        e: &Entry,
        crc: u32,
        size: u64,
        csize: u64,
        offset: u64,
        zip64_local: bool,
    ) -> io::Result<()> {
        let sizes64 = zip64_local || size >= MAX32 || csize >= MAX32;
        let offset64 = offset >= MAX32;
        let mut extra = Vec::new();
        if sizes64 || offset64 {
            put16(&mut extra, 0x0001);
            put16(&mut extra, (if sizes64 { 16 } else { 0 }) + if offset64 { 8 } else { 0 });
            if sizes64 {
                put64(&mut extra, size);
                put64(&mut extra, csize);
            }
            if offset64 {
                put64(&mut extra, offset);
            }
        }
        let (date, time) = e.dos();
        let mut b = Vec::with_capacity(46 + e.name.len() + extra.len());
        put32(&mut b, CENTRAL);
        put16(&mut b, MADE_BY);
        put16(&mut b, if extra.is_empty() { 20 } else { 45 });
        put16(&mut b, UTF8);
        put16(&mut b, e.method.code());
        put16(&mut b, time);
        put16(&mut b, date);
        put32(&mut b, crc);
        put32(&mut b, if sizes64 { MAX32 as u32 } else { csize as u32 });
        put32(&mut b, if sizes64 { MAX32 as u32 } else { size as u32 });
        put16(&mut b, name_len(&e.name)?);
        put16(&mut b, extra.len() as u16);
        put16(&mut b, 0); // comment
        put16(&mut b, 0); // disk
        put16(&mut b, 0); // internal attributes
        put32(&mut b, 0o100644 << 16); // a regular file, rw-r--r--
        put32(&mut b, if offset64 { MAX32 as u32 } else { offset as u32 });
        b.extend_from_slice(e.name.as_bytes());
        b.extend_from_slice(&extra);
        self.central.write_all(&b)?;
        self.entries += 1;
        Ok(())
    }

    fn not_open(&self) -> io::Result<()> {
        match &self.open {
            Some(o) => Err(io::Error::other(format!("zip entry {} is still being written", o.entry.name))),
            None => Ok(()),
        }
    }

    /// An entry whose `csize` bytes (compressed as `entry.method` says) come from `data`.
    pub fn add_raw(&mut self, entry: &Entry, crc: u32, size: u64, csize: u64, data: &mut dyn Read) -> io::Result<()> {
        self.not_open()?;
        let offset = self.pos;
        let zip64 = size >= MAX32 || csize >= MAX32;
        let header = local_header(entry, crc, size, csize, zip64)?;
        self.emit(&header)?;
        let copied = io::copy(&mut data.take(csize), &mut self.out)?;
        self.pos += copied;
        if copied != csize {
            return Err(io::Error::other(format!("zip entry {}: {copied} bytes of {csize}", entry.name)));
        }
        self.central_record(entry, crc, size, csize, offset, zip64)
    }

    pub fn add_prepared(&mut self, p: &Prepared) -> io::Result<()> {
        self.add_raw(&p.entry, p.crc, p.size, p.data.len() as u64, &mut &p.data[..])
    }

    /// Starts an entry whose bytes come through `write`; `size` is what they are expected to
    /// be (the header reserves zip64 sizes from `LARGE` on).
    pub fn start(&mut self, entry: Entry, size: u64) -> io::Result<()> {
        self.not_open()?;
        let offset = self.pos;
        let zip64 = size >= LARGE;
        let header = local_header(&entry, 0, 0, 0, zip64)?;
        self.emit(&header)?;
        let deflate = (entry.method == Method::Deflated)
            .then(|| (Compress::new(Compression::new(LEVEL), false), Vec::with_capacity(1 << 16)));
        self.open = Some(Open { entry, offset, zip64, crc: Hasher::new(), size: 0, csize: 0, deflate });
        Ok(())
    }

    pub fn write(&mut self, b: &[u8]) -> io::Result<()> {
        let mut o = self.open.take().ok_or_else(|| io::Error::other("zip bytes written outside an entry"))?;
        o.crc.update(b);
        o.size += b.len() as u64;
        let r = match &mut o.deflate {
            Some((c, buf)) => deflate(c, b, FlushCompress::None, buf).and_then(|()| {
                let r = self.emit(buf);
                o.csize += buf.len() as u64;
                buf.clear();
                r
            }),
            None => {
                o.csize += b.len() as u64;
                self.emit(b)
            }
        };
        self.open = Some(o);
        r
    }

    /// Ends the streamed entry: its header gets its CRC and sizes.
    pub fn end(&mut self) -> io::Result<()> {
        let mut o = self.open.take().ok_or_else(|| io::Error::other("a zip entry ended that was not started"))?;
        if let Some((c, buf)) = &mut o.deflate {
            deflate(c, &[], FlushCompress::Finish, buf)?;
            o.csize += buf.len() as u64;
            let tail = std::mem::take(buf);
            self.emit(&tail)?;
        }
        if !o.zip64 && (o.size >= MAX32 || o.csize >= MAX32) {
            return Err(io::Error::other(format!(
                "zip entry {}: {} bytes, more than it was announced with and than a header without \
                 zip64 sizes can hold",
                o.entry.name, o.size
            )));
        }
        let crc = o.crc.finalize();
        let header = local_header(&o.entry, crc, o.size, o.csize, o.zip64)?;
        self.out.seek(SeekFrom::Start(o.offset))?;
        self.out.write_all(&header)?;
        self.out.seek(SeekFrom::Start(self.pos))?;
        self.central_record(&o.entry, crc, o.size, o.csize, o.offset, o.zip64)
    }

    /// Writes the central directory and the end records; returns the output, flushed, and
    /// its length.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.not_open()?;
        let start = self.pos;
        self.central.flush()?;
        let central = self.central.get_mut();
        central.rewind()?;
        let copied = io::copy(central, &mut self.out)?;
        self.pos += copied;
        let size = copied;
        let entries = self.entries;
        let mut b = Vec::new();
        if entries >= 0xFFFF || start >= MAX32 || size >= MAX32 {
            let end64 = self.pos;
            put32(&mut b, END64);
            put64(&mut b, 44);
            put16(&mut b, MADE_BY);
            put16(&mut b, 45);
            put32(&mut b, 0);
            put32(&mut b, 0);
            put64(&mut b, entries);
            put64(&mut b, entries);
            put64(&mut b, size);
            put64(&mut b, start);
            put32(&mut b, LOCATOR64);
            put32(&mut b, 0);
            put64(&mut b, end64);
            put32(&mut b, 1);
        }
        put32(&mut b, END);
        put16(&mut b, 0);
        put16(&mut b, 0);
        put16(&mut b, entries.min(0xFFFF) as u16);
        put16(&mut b, entries.min(0xFFFF) as u16);
        put32(&mut b, size.min(MAX32) as u32);
        put32(&mut b, start.min(MAX32) as u32);
        put16(&mut b, 0);
        self.emit(&b)?;
        self.out.flush()?;
        Ok((self.out, self.pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn entry(name: &str, method: Method) -> Entry {
        Entry { name: name.into(), method, modified: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap() }
    }

    fn read_back(bytes: Vec<u8>) -> Vec<(String, Vec<u8>)> {
        let mut z = zip::ZipArchive::new(Cursor::new(bytes)).expect("the zip crate reads it");
        (0..z.len())
            .map(|i| {
                let mut f = z.by_index(i).unwrap();
                let mut v = Vec::new();
                f.read_to_end(&mut v).expect("its CRC and sizes match");
                (f.name().unwrap().to_string(), v)
            })
            .collect()
    }

    #[test]
    fn entries_of_every_kind_read_back() {
        let mut z = ZipOut::new(Cursor::new(Vec::new()), tempfile::tempfile().unwrap());
        let mut d = Deflater::default();
        let text = b"{\"name\":\"a record\"}".repeat(50);
        z.add_prepared(&d.prepare(entry("o/versions/a_1", Method::Deflated), &text).unwrap()).unwrap();
        // Too short to shrink: stored.
        let p = d.prepare(entry("o/versions/b_1", Method::Deflated), b"{}").unwrap();
        assert_eq!(p.entry.method, Method::Stored);
        z.add_prepared(&p).unwrap();
        z.start(entry("o/1: notes.txt", Method::Deflated), 30_000).unwrap();
        for _ in 0..3 {
            z.write(&b"0123456789".repeat(1000)).unwrap();
        }
        z.end().unwrap();
        z.start(entry("o/2: photo.jpg", Method::Stored), 5).unwrap();
        z.write(b"\xff\xd8\xff\x00\x01").unwrap();
        z.end().unwrap();
        // Three segments deflated apart, the first made last.
        let mut middle = Deflating::new(Vec::new());
        middle.write_all(&b"entry,".repeat(10_000)).unwrap();
        let (mid, mseg) = middle.end(false).unwrap();
        let (head, hseg) = deflate_segment(b"head[", false).unwrap();
        let (tail, tseg) = deflate_segment(b"]", true).unwrap();
        let (crc, size, csize) = join(&[&hseg, &mseg, &tseg]);
        let all = [head, mid, tail].concat();
        assert_eq!(csize, all.len() as u64);
        z.add_raw(&entry("o/manifest.json", Method::Deflated), crc, size, csize, &mut &all[..]).unwrap();
        let got = read_back(z.finish().unwrap().0.into_inner());
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["o/versions/a_1", "o/versions/b_1", "o/1: notes.txt", "o/2: photo.jpg", "o/manifest.json"]);
        assert_eq!(got[0].1, text);
        assert_eq!(got[1].1, b"{}");
        assert_eq!(got[2].1, b"0123456789".repeat(3000));
        assert_eq!(got[3].1, b"\xff\xd8\xff\x00\x01");
        assert_eq!(got[4].1, [&b"head["[..], &b"entry,".repeat(10_000), b"]"].concat());
    }

    #[test]
    fn zip64_end_record_past_65534_entries_only() {
        for n in [65_534u32, 65_535, 70_000] {
            let mut z = ZipOut::new(Cursor::new(Vec::new()), tempfile::tempfile().unwrap());
            let mut d = Deflater::default();
            for i in 0..n {
                z.add_prepared(&d.prepare(entry(&format!("v/{i}"), Method::Deflated), b"x").unwrap()).unwrap();
            }
            let bytes = z.finish().unwrap().0.into_inner();
            let has64 = bytes.windows(4).any(|w| w == END64.to_le_bytes());
            assert_eq!(has64, n >= 65_535, "{n} entries");
            let z = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
            assert_eq!(z.len(), n as usize);
        }
    }

    #[test]
    fn a_streamed_entry_must_be_ended_before_another() {
        let mut z = ZipOut::new(Cursor::new(Vec::new()), tempfile::tempfile().unwrap());
        z.start(entry("a", Method::Stored), 1).unwrap();
        assert!(z.start(entry("b", Method::Stored), 1).is_err());
        assert!(z.end().is_ok());
        assert!(z.end().is_err());
    }
}
