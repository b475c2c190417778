//! Writing PyTorch `.pth` checkpoints (the zip format of `torch.save`), tensor by tensor.
//!
//! Used by `weights init-random` to produce files in the official layout and by the loader
//! tests (feature `testing`). Entries are stored uncompressed and 64-byte aligned like PyTorch's writer; zip64
//! records are always written so files of any size work. In sparse mode tensor data is left as
//! holes (reads as zeros) and costs no disk space: the CRCs are computed arithmetically.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use candle_core::DType;

/// One tensor to write: name, dtype, shape, and its little-endian bytes (None in sparse mode).
pub struct PthEntry {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// How the state dict is nested in the pickle.
pub enum Nesting {
    /// `{name: tensor}` (the VAE, T5 and CLIP files).
    Flat,
    /// `{key: {name: tensor}, "iteration": 0}` (SAT checkpoints: key `module`).
    Under(String),
}

fn storage_class(dt: DType) -> std::io::Result<&'static str> {
    Ok(match dt {
        DType::F32 => "FloatStorage",
        DType::F16 => "HalfStorage",
        DType::BF16 => "BFloat16Storage",
        DType::F64 => "DoubleStorage",
        DType::U8 => "ByteStorage",
        DType::I64 => "LongStorage",
        other => {
            return Err(std::io::Error::other(format!(
                "no PyTorch storage class for {other:?}"
            )))
        }
    })
}

struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, b: u8) {
        self.0.push(b);
    }
    fn str(&mut self, s: &str) {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn global(&mut self, module: &str, name: &str) {
        self.0.push(b'c');
        self.0
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }
    fn int(&mut self, v: usize) {
        if v < 256 {
            self.0.extend_from_slice(&[b'K', v as u8]);
        } else if v < (1 << 31) {
            self.0.push(b'J');
            self.0.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            // LONG1 with 8 little-endian bytes.
            self.0.extend_from_slice(&[0x8a, 8]);
            self.0.extend_from_slice(&(v as i64).to_le_bytes());
        }
    }
    fn tuple(&mut self, vs: &[usize]) {
        if vs.is_empty() {
            self.op(b')');
            return;
        }
        self.op(b'(');
        for &v in vs {
            self.int(v);
        }
        self.op(b't');
    }
}

fn pickle(entries: &[PthEntry], nesting: &Nesting) -> std::io::Result<Vec<u8>> {
    let mut p = Pickle(vec![0x80, 2]);
    p.op(b'}');
    if let Nesting::Under(key) = nesting {
        p.op(b'(');
        p.str(key);
        p.op(b'}');
    }
    p.op(b'(');
    for (i, e) in entries.iter().enumerate() {
        p.str(&e.name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(b'(');
        p.op(b'(');
        p.str("storage");
        p.global("torch", storage_class(e.dtype)?);
        p.str(&i.to_string());
        p.str("cpu");
        p.int(e.shape.iter().product());
        p.op(b't');
        p.op(b'Q'); // BINPERSID
        p.int(0);
        p.tuple(&e.shape);
        let mut strides = vec![1usize; e.shape.len()];
        for d in (0..e.shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * e.shape[d + 1];
        }
        p.tuple(&strides);
        p.op(0x89); // NEWFALSE: requires_grad
        p.global("collections", "OrderedDict");
        p.op(b')');
        p.op(b'R');
        p.op(b't');
        p.op(b'R');
    }
    p.op(b'u');
    if let Nesting::Under(_) = nesting {
        p.str("iteration");
        p.int(0);
        p.op(b'u');
    }
    p.op(b'.');
    Ok(p.0)
}

/// CRC-32 of `n` zero bytes, in O(log n) combines.
fn crc_of_zeros(n: u64) -> u32 {
    let mut result = crc32fast::Hasher::new();
    let mut block = crc32fast::Hasher::new();
    block.update(&[0u8]);
    let mut block_len = 1u64;
    let mut remaining = n;
    while remaining > 0 {
        if remaining & 1 == 1 {
            result.combine(&block);
        }
        remaining >>= 1;
        if remaining > 0 {
            let b2 = block.clone();
            block.combine(&b2);
            block_len *= 2;
        }
    }
    let _ = block_len;
    result.finalize()
}

struct CentralEntry {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
}

/// Streaming zip writer for `torch.save` archives.
struct ZipOut {
    f: BufWriter<File>,
    pos: u64,
    entries: Vec<CentralEntry>,
}

impl ZipOut {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.f.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    /// Local header with a zip64 extra (sizes) and padding so the data starts 64-aligned.
    fn header(&mut self, name: &str, crc: u32, size: u64) -> std::io::Result<()> {
        let offset = self.pos;
        let base = 30 + name.len() as u64 + 20 + 4;
        let pad = ((64 - (offset + base) % 64) % 64) as u16;
        let mut h = Vec::new();
        h.extend_from_slice(&0x04034b50u32.to_le_bytes());
        h.extend_from_slice(&45u16.to_le_bytes()); // version needed (zip64)
        h.extend_from_slice(&0u16.to_le_bytes()); // flags
        h.extend_from_slice(&0u16.to_le_bytes()); // stored
        h.extend_from_slice(&0u16.to_le_bytes()); // time
        h.extend_from_slice(&0x21u16.to_le_bytes()); // date 1980-01-01
        h.extend_from_slice(&crc.to_le_bytes());
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&(20 + 4 + pad).to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(&size.to_le_bytes());
        h.extend_from_slice(&size.to_le_bytes());
        h.extend_from_slice(&0x4246u16.to_le_bytes()); // "FB" padding, as PyTorch does
        h.extend_from_slice(&pad.to_le_bytes());
        h.extend(std::iter::repeat_n(b'Z', pad as usize));
        self.write_all(&h)?;
        self.entries.push(CentralEntry {
            name: name.to_string(),
            crc,
            size,
            offset,
        });
        Ok(())
    }

    fn entry(&mut self, name: &str, data: &[u8]) -> std::io::Result<()> {
        self.header(name, crc32fast::hash(data), data.len() as u64)?;
        self.write_all(data)
    }

    fn finish(mut self) -> std::io::Result<()> {
        let cd_start = self.pos;
        let entries = std::mem::take(&mut self.entries);
        for e in &entries {
            let mut h = Vec::new();
            h.extend_from_slice(&0x02014b50u32.to_le_bytes());
            h.extend_from_slice(&45u16.to_le_bytes());
            h.extend_from_slice(&45u16.to_le_bytes());
            h.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // flags, method
            h.extend_from_slice(&0x21u16.to_le_bytes());
            h.extend_from_slice(&e.crc.to_le_bytes());
            h.extend_from_slice(&u32::MAX.to_le_bytes());
            h.extend_from_slice(&u32::MAX.to_le_bytes());
            h.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            h.extend_from_slice(&28u16.to_le_bytes()); // extra
            h.extend_from_slice(&[0; 10]); // comment length, disk, internal and external attributes
            h.extend_from_slice(&u32::MAX.to_le_bytes()); // offset in zip64 extra
            h.extend_from_slice(e.name.as_bytes());
            h.extend_from_slice(&1u16.to_le_bytes());
            h.extend_from_slice(&24u16.to_le_bytes());
            h.extend_from_slice(&e.size.to_le_bytes());
            h.extend_from_slice(&e.size.to_le_bytes());
            h.extend_from_slice(&e.offset.to_le_bytes());
            self.write_all(&h)?;
        }
        let cd_size = self.pos - cd_start;
        let eocd64 = self.pos;
        let n = entries.len() as u64;
        let mut h = Vec::new();
        h.extend_from_slice(&0x06064b50u32.to_le_bytes());
        h.extend_from_slice(&44u64.to_le_bytes());
        h.extend_from_slice(&45u16.to_le_bytes());
        h.extend_from_slice(&45u16.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&n.to_le_bytes());
        h.extend_from_slice(&n.to_le_bytes());
        h.extend_from_slice(&cd_size.to_le_bytes());
        h.extend_from_slice(&cd_start.to_le_bytes());
        // Locator.
        h.extend_from_slice(&0x07064b50u32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&eocd64.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        // Classic end record pointing at the zip64 one.
        h.extend_from_slice(&0x06054b50u32.to_le_bytes());
        h.extend_from_slice(&[0, 0, 0, 0]);
        h.extend_from_slice(&u16::MAX.to_le_bytes());
        h.extend_from_slice(&u16::MAX.to_le_bytes());
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        self.write_all(&h)?;
        self.f.flush()
    }
}

/// Writes a `torch.save`-compatible checkpoint. `data(i)` yields entry i's bytes (it is only
/// called when `sparse` is false; sparse files read back as zeros).
pub fn write_pth(
    path: &Path,
    entries: &[PthEntry],
    nesting: &Nesting,
    sparse: bool,
    mut data: impl FnMut(usize) -> std::io::Result<Vec<u8>>,
) -> std::io::Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let mut z = ZipOut {
        f: BufWriter::new(File::create(path)?),
        pos: 0,
        entries: Vec::new(),
    };
    z.entry("archive/data.pkl", &pickle(entries, nesting)?)?;
    z.entry("archive/byteorder", b"little")?;
    for (i, e) in entries.iter().enumerate() {
        let size = (e.shape.iter().product::<usize>() * e.dtype.size_in_bytes()) as u64;
        let name = format!("archive/data/{i}");
        if sparse {
            z.header(&name, crc_of_zeros(size), size)?;
            z.f.flush()?;
            z.f.get_mut().seek(SeekFrom::Current(size as i64))?;
            z.pos += size;
        } else {
            let bytes = data(i)?;
            if bytes.len() as u64 != size {
                return Err(std::io::Error::other(format!(
                    "{}: {} bytes for shape {:?} {:?}",
                    e.name,
                    bytes.len(),
                    e.shape,
                    e.dtype
                )));
            }
            z.entry(&name, &bytes)?;
        }
    }
    z.entry("archive/version", b"3\n")?;
    z.finish()
}

/// Writes `tensors` (f32, bf16 or f16, in this order) as a flat state dict, the layout of the
/// official encoder files (`torch.save(state_dict)`).
pub fn write_state_dict(
    path: &Path,
    tensors: &[(String, candle_core::Tensor)],
) -> std::io::Result<()> {
    let entries: Vec<PthEntry> = tensors
        .iter()
        .map(|(name, t)| PthEntry {
            name: name.clone(),
            dtype: t.dtype(),
            shape: t.dims().to_vec(),
        })
        .collect();
    write_pth(path, &entries, &Nesting::Flat, false, |i| {
        crate::checkpoint::convert::tensor_bytes(&tensors[i].1).map_err(std::io::Error::other)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc_of_zeros_matches_direct() {
        for n in [0u64, 1, 2, 3, 7, 64, 1000, 4097] {
            assert_eq!(
                super::crc_of_zeros(n),
                crc32fast::hash(&vec![0u8; n as usize]),
                "n={n}"
            );
        }
    }
}
