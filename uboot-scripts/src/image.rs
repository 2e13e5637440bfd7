//! The legacy U-Boot image that `source` runs: what `mkimage -A riscv -O linux -T script -C none
//! -n NAME -d boot.cmd boot.scr` writes (byte-identical with `SOURCE_DATE_EPOCH=0`), so building
//! `boot.scr` needs no u-boot-tools.
//!
//! Layout: a 64-byte big-endian header (magic `0x27051956`, header CRC, time, data size, load
//! address, entry point, data CRC, OS, architecture, type, compression, 32-byte name), then the
//! data: a table of part lengths (one part: the script's length, then a zero word) and the
//! script.

/// Image header magic.
pub const IH_MAGIC: u32 = 0x2705_1956;
/// `IH_OS_LINUX`.
pub const IH_OS_LINUX: u8 = 5;
/// `IH_ARCH_RISCV`.
pub const IH_ARCH_RISCV: u8 = 26;
/// `IH_TYPE_SCRIPT`.
pub const IH_TYPE_SCRIPT: u8 = 6;
/// `IH_COMP_NONE`.
pub const IH_COMP_NONE: u8 = 0;
/// Header length.
pub const HEADER_LEN: usize = 64;

/// Build a script image holding `script`, named `name` (truncated to 31 bytes), timestamp
/// `time` (0 for reproducible builds).
pub fn script_image(script: &[u8], name: &str, time: u32) -> Vec<u8> {
    let mut data = Vec::with_capacity(8 + script.len());
    data.extend_from_slice(&(script.len() as u32).to_be_bytes());
    data.extend_from_slice(&0u32.to_be_bytes());
    data.extend_from_slice(script);

    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&IH_MAGIC.to_be_bytes());
    // h[4..8]: header CRC, computed with the field zeroed.
    h[8..12].copy_from_slice(&time.to_be_bytes());
    h[12..16].copy_from_slice(&(data.len() as u32).to_be_bytes());
    // load address and entry point: 0
    h[24..28].copy_from_slice(&crc32fast::hash(&data).to_be_bytes());
    h[28] = IH_OS_LINUX;
    h[29] = IH_ARCH_RISCV;
    h[30] = IH_TYPE_SCRIPT;
    h[31] = IH_COMP_NONE;
    let n = name.as_bytes();
    let n = &n[..n.len().min(31)];
    h[32..32 + n.len()].copy_from_slice(n);
    let hcrc = crc32fast::hash(&h);
    h[4..8].copy_from_slice(&hcrc.to_be_bytes());

    let mut out = h.to_vec();
    out.extend_from_slice(&data);
    out
}

/// The script inside an image made by [`script_image`] (or mkimage), if both CRCs check.
pub fn script_of(image: &[u8]) -> Option<&[u8]> {
    if image.len() < HEADER_LEN + 8 {
        return None;
    }
    let be = |o: usize| u32::from_be_bytes(image[o..o + 4].try_into().expect("4 bytes"));
    if be(0) != IH_MAGIC || image[30] != IH_TYPE_SCRIPT {
        return None;
    }
    let mut h = image[..HEADER_LEN].to_vec();
    h[4..8].fill(0);
    if crc32fast::hash(&h) != be(4) {
        return None;
    }
    // Sizes come from the image: checked arithmetic, and slices only through `get`.
    let size = usize::try_from(be(12)).ok()?;
    let data = image.get(HEADER_LEN..HEADER_LEN.checked_add(size)?)?;
    if crc32fast::hash(data) != be(24) {
        return None;
    }
    let len = usize::try_from(be(HEADER_LEN)).ok()?;
    data.get(8..8usize.checked_add(len)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Absurd sizes in a header (CRCs made valid) give `None`, never a panic.
        #[test]
        fn absurd_sizes_never_panic(size: u32, len: u32, tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut img = script_image(b"echo hi\n", "zbot", 0);
            img.truncate(HEADER_LEN);
            img.extend_from_slice(&len.to_be_bytes());
            img.extend_from_slice(&[0; 4]);
            img.extend_from_slice(&tail);
            img[12..16].copy_from_slice(&size.to_be_bytes());
            let dcrc = crc32fast::hash(img.get(HEADER_LEN..HEADER_LEN + size as usize).unwrap_or(&[]));
            img[24..28].copy_from_slice(&dcrc.to_be_bytes());
            img[4..8].fill(0);
            let hcrc = crc32fast::hash(&img[..HEADER_LEN]);
            img[4..8].copy_from_slice(&hcrc.to_be_bytes());
            let _ = script_of(&img);
        }
    }

    #[test]
    fn round_trips_and_rejects_a_flipped_byte() {
        let img = script_image(b"echo hi\n", "zbot", 0);
        assert_eq!(script_of(&img), Some(&b"echo hi\n"[..]));
        let mut bad = img.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(script_of(&bad), None);
        let mut bad = img;
        bad[40] ^= 1;
        assert_eq!(script_of(&bad), None);
    }
}
