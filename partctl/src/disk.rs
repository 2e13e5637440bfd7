//! Reading the table areas of a card from any `Read + Seek` (file, block device, memory), and a
//! patched view used to show and test what a repair plan will leave behind.

use crate::gpt::{self, RawHeader, MAX_ARRAY_BYTES};
use crate::mbr::{self, Mbr};
use crate::SECTOR;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};

/// One GPT copy as found at an LBA.
#[derive(Clone, Debug, Serialize)]
pub struct CopyAt {
    /// Where the header was looked for.
    pub lba: u64,
    /// The header sector as read.
    #[serde(skip)]
    pub sector: Vec<u8>,
    /// Decoded header, `None` when there is no `EFI PART` signature.
    pub raw: Option<RawHeader>,
    /// The entry array at the header's PartitionEntryLBA, or why it could not be read.
    #[serde(skip)]
    pub array: Result<Vec<u8>, String>,
}

impl CopyAt {
    /// True when the entry array was read and its CRC matches the header.
    pub fn array_crc_ok(&self) -> bool {
        match (&self.raw, &self.array) {
            (Some(r), Ok(a)) => crc32fast::hash(a) == r.header.entries_crc,
            _ => false,
        }
    }
}

/// Everything `check` and `repair` look at: MBR, both GPT copies and, when the primary points
/// elsewhere than the last LBA, the copy it points to. Cost does not depend on the card size.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    /// Card size in 512-byte sectors.
    pub disk_sectors: u64,
    /// The MBR sector.
    #[serde(skip)]
    pub mbr_sector: Vec<u8>,
    /// Decoded MBR.
    pub mbr: Mbr,
    /// The primary copy (LBA 1).
    pub primary: CopyAt,
    /// The copy at the last LBA (where the backup belongs).
    pub backup: CopyAt,
    /// The copy at the primary's AlternateLBA when that is neither 1 nor the last LBA and is on
    /// the card (e.g. an image `dd`'d to a larger card).
    pub alternate: Option<CopyAt>,
}

/// Read `n` sectors at `lba`; short reads past the end are an error.
pub fn read_sectors<R: Read + Seek>(r: &mut R, lba: u64, n: u64) -> io::Result<Vec<u8>> {
    let off = lba
        .checked_mul(SECTOR)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "LBA overflow"))?;
    let len = n
        .checked_mul(SECTOR)
        .filter(|&l| l <= MAX_ARRAY_BYTES + SECTOR)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "read too large"))?;
    r.seek(SeekFrom::Start(off))?;
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

fn read_copy<R: Read + Seek>(r: &mut R, lba: u64, disk_sectors: u64) -> CopyAt {
    let sector = read_sectors(r, lba, 1).unwrap_or_else(|_| vec![0; SECTOR as usize]);
    let raw = gpt::parse_header(&sector);
    let array = match &raw {
        None => Err("no header".to_string()),
        Some(rh) => {
            let h = &rh.header;
            let bytes = h.array_bytes();
            if h.entry_size == 0 || h.num_entries == 0 {
                Err(format!(
                    "header declares {} entries of {} bytes",
                    h.num_entries, h.entry_size
                ))
            } else if bytes > MAX_ARRAY_BYTES {
                Err(format!("entry array of {bytes} bytes is larger than the {MAX_ARRAY_BYTES} bytes partctl accepts"))
            } else if h.entries_lba >= disk_sectors
                || h.entries_lba.saturating_add(h.array_sectors()) > disk_sectors
            {
                Err(format!(
                    "entry array at LBA {} is past the end of the card (LBA {})",
                    h.entries_lba,
                    disk_sectors - 1
                ))
            } else {
                read_sectors(r, h.entries_lba, h.array_sectors())
                    .map(|mut a| {
                        a.truncate(bytes as usize);
                        a
                    })
                    .map_err(|e| format!("reading entry array at LBA {}: {e}", h.entries_lba))
            }
        }
    };
    CopyAt {
        lba,
        sector,
        raw,
        array,
    }
}

impl Snapshot {
    /// Read the table areas of a card of `disk_bytes` bytes.
    pub fn read<R: Read + Seek>(r: &mut R, disk_bytes: u64) -> io::Result<Snapshot> {
        let disk_sectors = disk_bytes / SECTOR;
        if disk_sectors < 3 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{disk_bytes} bytes is too small to hold a partition table"),
            ));
        }
        let mbr_sector = read_sectors(r, 0, 1)?;
        let mbr = mbr::parse(&mbr_sector);
        let primary = read_copy(r, 1, disk_sectors);
        let backup = read_copy(r, disk_sectors - 1, disk_sectors);
        let alternate = primary
            .raw
            .as_ref()
            .map(|h| h.header.alternate_lba)
            .filter(|&a| a != 1 && a != disk_sectors - 1 && a > 1 && a < disk_sectors)
            .map(|a| read_copy(r, a, disk_sectors));
        Ok(Snapshot {
            disk_sectors,
            mbr_sector,
            mbr,
            primary,
            backup,
            alternate,
        })
    }

    /// Read from a reader whose size is found by seeking to its end.
    pub fn from_reader<R: Read + Seek>(r: &mut R) -> io::Result<Snapshot> {
        let size = r.seek(SeekFrom::End(0))?;
        Snapshot::read(r, size)
    }

    /// Last LBA.
    pub fn last_lba(&self) -> u64 {
        self.disk_sectors - 1
    }
}

/// A reader with some sectors replaced: what the card looks like after some writes.
pub struct Patched<R> {
    inner: R,
    patches: BTreeMap<u64, Vec<u8>>,
    pos: u64,
}

impl<R: Read + Seek> Patched<R> {
    /// Wrap `inner`.
    pub fn new(inner: R) -> Self {
        Patched {
            inner,
            patches: BTreeMap::new(),
            pos: 0,
        }
    }
    /// Replace sector `lba` with `data` (512 bytes).
    pub fn patch(&mut self, lba: u64, data: &[u8]) {
        self.patches.insert(lba, data.to_vec());
    }
}

impl<R: Read + Seek> Read for Patched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.seek(SeekFrom::Start(self.pos))?;
        let n = self.inner.read(buf)?;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let at = self.pos + i as u64;
            if let Some(p) = self.patches.get(&(at / SECTOR)) {
                *b = p[(at % SECTOR) as usize];
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for Patched<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::Current(d) => self
                .pos
                .checked_add_signed(d)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before start"))?,
            end => self.inner.seek(end)?,
        };
        Ok(self.pos)
    }
}
