//! An independent reader of U-Boot's single-copy environment format, for the tests that check
//! what real U-Boot and the C tools wrote (`saveenv`, `mkenvimage`, the golden fixtures).
//!
//! Why not fw-env's codec: these tests are the evidence that the codec reads the format as
//! U-Boot writes it, so the reader that checks U-Boot's bytes must not be the codec under test.
//! This one follows U-Boot's `env_import` and `crc32` directly: a CRC-32 (zlib's) of the data
//! area stored little-endian in the first four bytes; NUL-terminated `name=value` strings,
//! ended by an empty string. Everything else on env bytes goes through `fw_env::codec`.

/// True when the CRC stored in the first four bytes of `image` is zlib's CRC-32 of
/// `image[data_start..]` (4 for a single copy, 5 for a redundant copy after its flags byte).
pub fn crc_ok(data_start: usize, image: &[u8]) -> bool {
    let stored = u32::from_le_bytes(image[..4].try_into().expect("an image has a CRC"));
    crc32fast::hash(&image[data_start..]) == stored
}

/// Parse the data area of a single-copy env image (`crc | data`) into `(name, value)` pairs,
/// raw bytes as stored (no unescaping). Stops at the first empty string.
pub fn parse_env_vars(data: &[u8]) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for item in data.split(|&b| b == 0) {
        if item.is_empty() {
            break;
        }
        let s = String::from_utf8_lossy(item);
        let (n, v) = s.split_once('=').unwrap_or((&s, ""));
        vars.push((n.to_string(), v.to_string()));
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_env_vars_stops_at_double_nul() {
        let v = parse_env_vars(b"a=1\0b=x=y\0\0stale=1\0");
        assert_eq!(
            v,
            vec![("a".into(), "1".into()), ("b".into(), "x=y".into())]
        );
    }

    #[test]
    fn crc_ok_is_zlib_crc32_of_the_data_area() {
        let mut image = vec![0u8; 4];
        image.extend_from_slice(b"a=1\0\0");
        assert!(!crc_ok(4, &image));
        // zlib.crc32(b"a=1\0\0") in Python: a value computed outside this crate.
        image[..4].copy_from_slice(&0x4598_063b_u32.to_le_bytes());
        assert!(crc_ok(4, &image));
    }
}
