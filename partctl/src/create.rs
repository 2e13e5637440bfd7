//! `partctl create`: the whole card image from a layout, using mkfs.vfat/mcopy and mke2fs for
//! the filesystems (each built in a temporary file, then copied into place sparsely: no loop
//! devices, no root needed).

use crate::layout::{Content, Layout, PartitionSpec, Placed};
use crate::model::Tables;
use crate::SECTOR;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Errors while creating an image.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// File I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        source: io::Error,
    },
    /// An external tool failed.
    #[error("{tool} failed for partition {part}: {detail}")]
    Tool {
        /// Program.
        tool: String,
        /// Partition name.
        part: String,
        /// Its stderr or exit status.
        detail: String,
    },
    /// Input missing or too big.
    #[error("partition {part}: {detail}")]
    Input {
        /// Partition name.
        part: String,
        /// What is wrong.
        detail: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> CreateError {
    let what = what.into();
    move |source| CreateError::Io { what, source }
}

fn run(cmd: &mut Command, part: &str) -> Result<(), CreateError> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|e| CreateError::Tool {
        tool: tool.clone(),
        part: part.into(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(CreateError::Tool {
            tool,
            part: part.into(),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Copy `src` into `dst` at byte offset `off`, skipping all-zero blocks (the output stays sparse).
fn copy_sparse(
    src: &mut File,
    dst: &mut File,
    off: u64,
    max: u64,
    part: &str,
) -> Result<(), CreateError> {
    let len = src.metadata().map_err(io_err("stat"))?.len();
    if len > max {
        return Err(CreateError::Input {
            part: part.into(),
            detail: format!("content is {len} bytes, the partition holds {max}"),
        });
    }
    src.seek(SeekFrom::Start(0)).map_err(io_err("seek"))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut pos = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(io_err("reading content"))?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            dst.seek(SeekFrom::Start(off + pos))
                .map_err(io_err("seek"))?;
            dst.write_all(&buf[..n]).map_err(io_err("writing image"))?;
        }
        pos += n as u64;
    }
    Ok(())
}

/// FAT volume id derived from the partition GUID, so images are reproducible.
fn volid(spec: &PartitionSpec) -> String {
    format!(
        "{:08X}",
        u32::from_le_bytes([
            spec.uuid.0[12],
            spec.uuid.0[13],
            spec.uuid.0[14],
            spec.uuid.0[15]
        ])
    )
}

/// ext4 UUID (and directory hash seed) derived from the partition GUID, last byte inverted so
/// that `UUID=` and `PARTUUID=` never collide.
fn fs_uuid(spec: &PartitionSpec) -> String {
    let mut g = spec.uuid;
    g.0[15] ^= 0xFF;
    g.to_string()
}

/// mke2fs with reproducible UUID, hash seed and timestamps (`SOURCE_DATE_EPOCH`, default 1).
fn mke2fs(spec: &PartitionSpec) -> Command {
    let mut c = Command::new("mke2fs");
    let t = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .filter(|v| v.parse::<u64>().is_ok_and(|n| n > 0))
        .unwrap_or_else(|| "1".into());
    let u = fs_uuid(spec);
    c.env("E2FSPROGS_FAKE_TIME", t).args([
        "-q",
        "-F",
        "-t",
        "ext4",
        "-U",
        &u,
        "-E",
        &format!("hash_seed={u}"),
    ]);
    c
}

/// The partition's filesystem image, built in `tmp` (or the raw image given), ready to copy
/// into the card; `None` for an empty partition.
fn build_fs(
    spec: &PartitionSpec,
    bytes: u64,
    input: &Path,
    tmp: &Path,
) -> Result<Option<File>, CreateError> {
    let img = tmp.join(format!("{}.img", spec.name));
    match &spec.content {
        Content::Empty => return Ok(None),
        Content::Raw { image } => return open_raw_image(spec, &input.join(image)).map(Some),
        Content::Fat32 {
            label,
            files,
            optional_files,
        } => {
            blank_image(&img, bytes)?;
            build_fat32(spec, bytes, label.as_deref(), &img)?;
            let srcs = fat32_sources(spec, files, optional_files, input)?;
            copy_into_fat32(spec, &img, &srcs)?;
        }
        Content::Ext4 { label, dir } => {
            blank_image(&img, bytes)?;
            build_ext4(
                spec,
                label.as_deref(),
                dir.as_ref().map(|d| input.join(d)),
                &img,
            )?;
        }
        Content::Env { .. } => {
            blank_image(&img, bytes)?;
            build_env(spec, input, tmp, &img)?;
        }
    }
    File::open(&img)
        .map(Some)
        .map_err(io_err(format!("opening {}", img.display())))
}

/// The error for a partition's input (missing, too big, unreadable, contradictory).
fn input_err(spec: &PartitionSpec, detail: impl Into<String>) -> CreateError {
    CreateError::Input {
        part: spec.name.clone(),
        detail: detail.into(),
    }
}

/// A zero-filled (sparse) file of the partition's size, for mkfs to format.
fn blank_image(img: &Path, bytes: u64) -> Result<(), CreateError> {
    let f = File::create(img).map_err(io_err(format!("creating {}", img.display())))?;
    f.set_len(bytes).map_err(io_err("sizing filesystem image"))
}

/// A `raw` partition's content: the given image as it is.
fn open_raw_image(spec: &PartitionSpec, p: &Path) -> Result<File, CreateError> {
    crate::files::open_regular(p)
        .map_err(|e| input_err(spec, format!("raw image {}: {e}", p.display())))
}

fn build_fat32(
    spec: &PartitionSpec,
    bytes: u64,
    label: Option<&str>,
    img: &Path,
) -> Result<(), CreateError> {
    let mut c = Command::new("mkfs.vfat");
    c.args(["-F", "32", "--invariant", "-i", &volid(spec)]);
    if bytes < 260 << 20 {
        c.args(["-s", "1"]); // enough clusters for FAT32 on a small partition
    }
    if let Some(l) = label {
        c.args(["-n", l]);
    }
    run(c.arg(img), &spec.name)
}

/// The files to copy into a FAT partition: every required one (refused if missing), then the
/// optional ones that exist.
fn fat32_sources(
    spec: &PartitionSpec,
    files: &[PathBuf],
    optional_files: &[PathBuf],
    input: &Path,
) -> Result<Vec<PathBuf>, CreateError> {
    let mut srcs: Vec<PathBuf> = Vec::new();
    for f in files {
        let p = input.join(f);
        if !p.exists() {
            return Err(input_err(spec, format!("missing file {}", p.display())));
        }
        srcs.push(p);
    }
    srcs.extend(
        optional_files
            .iter()
            .map(|f| input.join(f))
            .filter(|p| p.exists()),
    );
    Ok(srcs)
}

fn copy_into_fat32(spec: &PartitionSpec, img: &Path, srcs: &[PathBuf]) -> Result<(), CreateError> {
    if srcs.is_empty() {
        return Ok(());
    }
    let mut c = Command::new("mcopy");
    c.env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(img)
        .args(["-o", "-m"])
        .args(srcs)
        .arg("::/");
    run(&mut c, &spec.name)
}

fn build_ext4(
    spec: &PartitionSpec,
    label: Option<&str>,
    dir: Option<PathBuf>,
    img: &Path,
) -> Result<(), CreateError> {
    let mut c = mke2fs(spec);
    if let Some(l) = label {
        c.args(["-L", l]);
    }
    if let Some(d) = dir {
        c.arg("-d").arg(d);
    }
    run(c.arg(img), &spec.name)
}

/// The env partition: the env file staged in a directory (from `text` or `image`), the ext4
/// filesystem made from it, and for the `raw` backend the two redundant copies after it.
fn build_env(
    spec: &PartitionSpec,
    input: &Path,
    tmp: &Path,
    img: &Path,
) -> Result<(), CreateError> {
    let Content::Env {
        backend,
        file,
        image,
        text,
        size,
        ..
    } = &spec.content
    else {
        unreachable!("build_env is called for an env partition")
    };
    let root = tmp.join(format!("{}.root", spec.name));
    std::fs::create_dir_all(&root).map_err(io_err("env staging dir"))?;
    if image.is_some() && text.is_some() {
        return Err(input_err(
            spec,
            "give the env as `image` or as `text`, not both",
        ));
    }
    let staged = root.join(file.trim_start_matches('/'));
    if let Some(src) = text {
        stage_env_text(spec, &input.join(src), size.0, &staged)?;
    }
    if let Some(src) = image {
        stage_env_image(spec, &input.join(src), size.0, &staged)?;
    }
    let raw = match backend {
        crate::layout::EnvBackend::Ext4 => None,
        crate::layout::EnvBackend::Raw => {
            Some(crate::layout::raw_env_offsets(spec).map_err(|d| input_err(spec, d))?)
        }
    };
    mkfs_env(spec, &root, raw, img)?;
    if let Some(offsets) = raw {
        write_raw_env_copies(spec, &staged, size.0 as usize, offsets, img)?;
    }
    Ok(())
}

/// Creates the staged env file's directory.
fn staging_parent(staged: &Path) -> Result<(), CreateError> {
    if let Some(parent) = staged.parent() {
        std::fs::create_dir_all(parent).map_err(io_err("env staging dir"))?;
    }
    Ok(())
}

/// The env file from a text file of `name=value` lines, as `mkenvimage -s SIZE` makes it.
fn stage_env_text(
    spec: &PartitionSpec,
    src: &Path,
    size: u64,
    staged: &Path,
) -> Result<(), CreateError> {
    let bad =
        |e: &dyn std::fmt::Display| input_err(spec, format!("env text {}: {e}", src.display()));
    let bytes =
        crate::files::read_small(src, crate::files::MAX_ENV_TEXT_BYTES).map_err(|e| bad(&e))?;
    let env =
        fw_env::codec::mkimage_from_text(&bytes, size as usize, fw_env::codec::Layout::Single, 0)
            .map_err(|e| bad(&e))?;
    staging_parent(staged)?;
    std::fs::write(staged, env).map_err(io_err("env staging file"))
}

/// The env file copied from an image of exactly CONFIG_ENV_SIZE bytes.
fn stage_env_image(
    spec: &PartitionSpec,
    src: &Path,
    size: u64,
    staged: &Path,
) -> Result<(), CreateError> {
    staging_parent(staged)?;
    let bad = |e: io::Error| input_err(spec, format!("env image {}: {e}", src.display()));
    let len = crate::files::open_regular(src)
        .and_then(|f| f.metadata())
        .map_err(bad)?
        .len();
    if len != size {
        return Err(input_err(spec, format!("env image {} is {len} bytes, CONFIG_ENV_SIZE is {size} (make it with `mkenvimage -s {size:#x}`)", src.display())));
    }
    std::fs::copy(src, staged).map_err(bad)?;
    Ok(())
}

/// The env filesystem's recipe (layout::ENV_EXT4_FEATURES says why), holding the staged
/// `root`; with raw copies it ends where the first copy starts.
fn mkfs_env(
    spec: &PartitionSpec,
    root: &Path,
    raw: Option<[u64; 2]>,
    img: &Path,
) -> Result<(), CreateError> {
    let mut c = mke2fs(spec);
    c.arg("-b")
        .arg(crate::layout::ENV_EXT4_BLOCK_SIZE.to_string())
        .args(["-O", crate::layout::ENV_EXT4_FEATURES, "-L", "env", "-d"])
        .arg(root)
        .arg(img);
    if let Some(o) = raw {
        c.arg(env_fs_blocks(o).to_string());
    }
    run(&mut c, &spec.name)
}

/// Blocks of the env filesystem in front of raw copies at `offsets`.
fn env_fs_blocks(offsets: [u64; 2]) -> u64 {
    offsets[0].min(offsets[1]) / u64::from(crate::layout::ENV_EXT4_BLOCK_SIZE)
}

/// Both raw copies hold the staged env in U-Boot's redundant format. Without an env file the
/// copies stay zero (no valid copy: U-Boot's defaults).
fn write_raw_env_copies(
    spec: &PartitionSpec,
    staged: &Path,
    size: usize,
    offsets: [u64; 2],
    img: &Path,
) -> Result<(), CreateError> {
    if !staged.exists() {
        return Ok(());
    }
    let single = std::fs::read(staged).map_err(io_err("env staging file"))?;
    let copies = redundant_env_copies(&single, size).map_err(|d| input_err(spec, d))?;
    let mut out = OpenOptions::new()
        .write(true)
        .open(img)
        .map_err(io_err("env copies"))?;
    for (copy, off) in copies.iter().zip(offsets) {
        out.seek(SeekFrom::Start(off))
            .map_err(io_err("env copies"))?;
        out.write_all(copy).map_err(io_err("env copies"))?;
    }
    Ok(())
}

/// The two redundant copies (crc32 | flags | data) of a single-copy env image of `size`
/// bytes: copy 0 flags 1, copy 1 flags 0, so U-Boot and fw_printenv take copy 0. The single
/// copy's last byte must be free (0 or 0xff): the flags byte takes its room.
fn redundant_env_copies(single: &[u8], size: usize) -> Result<[Vec<u8>; 2], String> {
    if single[size - 1] != 0 && single[size - 1] != 0xff {
        return Err(
            "the env fills its last byte: no room for the redundant copies' flags byte".into(),
        );
    }
    let data = &single[4..size - 1];
    let copy = |flags| fw_env::codec::assemble(data, fw_env::codec::Layout::Redundant, flags);
    Ok([copy(1), copy(0)])
}

/// Create `output` from `layout`. `input` is where content paths are resolved; `size`
/// overrides the image size in bytes.
pub fn create(
    layout: &Layout,
    input: &Path,
    output: &Path,
    size: Option<u64>,
) -> Result<Tables, CreateError> {
    let n = size
        .map(|s| s / SECTOR)
        .unwrap_or_else(|| layout.image_sectors());
    if n < layout.min_sectors() {
        return Err(CreateError::Input {
            part: "-".into(),
            detail: format!(
                "image of {n} sectors is smaller than the layout's {}",
                layout.min_sectors()
            ),
        });
    }
    // The image is written sparsely (zero blocks skipped): on a device the old data would
    // show through, so only files are accepted.
    if std::fs::metadata(output).is_ok_and(|m| !m.is_file()) {
        return Err(CreateError::Input { part: "-".into(), detail: format!("{} is not a regular file: create writes an image file; copy it to the card with dd", output.display()) });
    }
    let tmp = tempdir()?;
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(output)
        .map_err(io_err(format!("creating {}", output.display())))?;
    out.set_len(n * SECTOR).map_err(io_err("sizing image"))?;
    for (spec, Placed { first, last, .. }) in layout.partitions.iter().zip(layout.place()) {
        let bytes = (last + 1 - first) * SECTOR;
        if let Some(mut f) = build_fs(spec, bytes, input, &tmp.0)? {
            copy_sparse(&mut f, &mut out, first * SECTOR, bytes, &spec.name)?;
        }
    }
    let tables = Tables::from_layout(layout, n);
    for (lba, data) in tables.sectors() {
        out.seek(SeekFrom::Start(lba * SECTOR))
            .map_err(io_err("seek"))?;
        out.write_all(&data).map_err(io_err("writing tables"))?;
    }
    out.sync_all().map_err(io_err("fsync image"))?;
    Ok(tables)
}

struct TmpDir(PathBuf);
impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> Result<TmpDir, CreateError> {
    let base = std::env::temp_dir();
    for i in 0..1000u32 {
        let p = base.join(format!("partctl-{}-{i}", std::process::id()));
        if std::fs::create_dir(&p).is_ok() {
            return Ok(TmpDir(p));
        }
    }
    Err(CreateError::Io {
        what: "creating a temporary directory".into(),
        source: io::Error::other("no free name"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(text: &[u8], size: usize) -> Vec<u8> {
        fw_env::codec::mkimage_from_text(text, size, fw_env::codec::Layout::Single, 0).unwrap()
    }

    #[test]
    fn redundant_copies_carry_the_single_copys_data_copy_0_current() {
        let s = single(b"bootdelay=1\nnext_boot=otafs\n", 256);
        let [c0, c1] = redundant_env_copies(&s, 256).unwrap();
        for c in [&c0, &c1] {
            assert_eq!(c.len(), 256);
            assert_eq!(c[5..], s[4..255], "same data, one byte shorter");
            assert_eq!(c[..4], c0[..4], "same crc");
        }
        assert_eq!((c0[4], c1[4]), (1, 0), "flags: copy 0 is the current one");
    }

    #[test]
    fn redundant_copies_refuse_an_env_that_fills_its_last_byte() {
        let mut s = single(b"a=1\n", 64);
        s[63] = b'x';
        let e = redundant_env_copies(&s, 64).unwrap_err();
        assert!(
            e.contains("no room for the redundant copies' flags byte"),
            "{e}"
        );
        s[63] = 0xff;
        assert!(redundant_env_copies(&s, 64).is_ok(), "0xff is free space");
    }

    #[test]
    fn env_filesystem_ends_at_the_first_raw_copy() {
        assert_eq!(env_fs_blocks([0x80000, 0xb0000]), 0x80000 / 1024);
        assert_eq!(env_fs_blocks([0xb0000, 0x80000]), 0x80000 / 1024);
    }
}
