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

fn build_fs(
    spec: &PartitionSpec,
    bytes: u64,
    input: &Path,
    tmp: &Path,
) -> Result<Option<File>, CreateError> {
    let img = tmp.join(format!("{}.img", spec.name));
    let mk = || -> Result<(), CreateError> {
        let f = File::create(&img).map_err(io_err(format!("creating {}", img.display())))?;
        f.set_len(bytes).map_err(io_err("sizing filesystem image"))
    };
    let part = spec.name.as_str();
    match &spec.content {
        Content::Empty => return Ok(None),
        Content::Raw { image } => {
            let p = input.join(image);
            return crate::files::open_regular(&p)
                .map(Some)
                .map_err(|e| CreateError::Input {
                    part: part.into(),
                    detail: format!("raw image {}: {e}", p.display()),
                });
        }
        Content::Fat32 {
            label,
            files,
            optional_files,
        } => {
            mk()?;
            let mut c = Command::new("mkfs.vfat");
            c.args(["-F", "32", "--invariant", "-i", &volid(spec)]);
            if bytes < 260 << 20 {
                c.args(["-s", "1"]); // enough clusters for FAT32 on a small partition
            }
            if let Some(l) = label {
                c.args(["-n", l]);
            }
            run(c.arg(&img), part)?;
            let mut srcs: Vec<PathBuf> = Vec::new();
            for f in files {
                let p = input.join(f);
                if !p.exists() {
                    return Err(CreateError::Input {
                        part: part.into(),
                        detail: format!("missing file {}", p.display()),
                    });
                }
                srcs.push(p);
            }
            srcs.extend(
                optional_files
                    .iter()
                    .map(|f| input.join(f))
                    .filter(|p| p.exists()),
            );
            if !srcs.is_empty() {
                let mut c = Command::new("mcopy");
                c.env("MTOOLS_SKIP_CHECK", "1")
                    .arg("-i")
                    .arg(&img)
                    .args(["-o", "-m"])
                    .args(&srcs)
                    .arg("::/");
                run(&mut c, part)?;
            }
        }
        Content::Ext4 { label, dir } => {
            mk()?;
            let mut c = mke2fs(spec);
            if let Some(l) = label {
                c.args(["-L", l]);
            }
            if let Some(d) = dir {
                c.arg("-d").arg(input.join(d));
            }
            run(c.arg(&img), part)?;
        }
        Content::Env {
            backend,
            file,
            image,
            text,
            size,
            ..
        } => {
            mk()?;
            let root = tmp.join(format!("{}.root", spec.name));
            std::fs::create_dir_all(&root).map_err(io_err("env staging dir"))?;
            if image.is_some() && text.is_some() {
                return Err(CreateError::Input {
                    part: part.into(),
                    detail: "give the env as `image` or as `text`, not both".into(),
                });
            }
            if let Some(src) = text {
                let src = input.join(src);
                let bytes = crate::files::read_small(&src, crate::files::MAX_ENV_TEXT_BYTES)
                    .map_err(|e| CreateError::Input {
                        part: part.into(),
                        detail: format!("env text {}: {e}", src.display()),
                    })?;
                let env = fw_env::codec::mkimage_from_text(
                    &bytes,
                    size.0 as usize,
                    fw_env::codec::Layout::Single,
                    0,
                )
                .map_err(|e| CreateError::Input {
                    part: part.into(),
                    detail: format!("env text {}: {e}", src.display()),
                })?;
                let dst = root.join(file.trim_start_matches('/'));
                if let Some(parent) = dst.parent() {
                    std::fs::create_dir_all(parent).map_err(io_err("env staging dir"))?;
                }
                std::fs::write(&dst, env).map_err(io_err("env staging file"))?;
            }
            if let Some(src) = image {
                let src = input.join(src);
                let dst = root.join(file.trim_start_matches('/'));
                if let Some(parent) = dst.parent() {
                    std::fs::create_dir_all(parent).map_err(io_err("env staging dir"))?;
                }
                let len = crate::files::open_regular(&src)
                    .and_then(|f| f.metadata())
                    .map_err(|e| CreateError::Input {
                        part: part.into(),
                        detail: format!("env image {}: {e}", src.display()),
                    })?
                    .len();
                if len != size.0 {
                    return Err(CreateError::Input { part: part.into(), detail: format!("env image {} is {len} bytes, CONFIG_ENV_SIZE is {} (make it with `mkenvimage -s {:#x}`)", src.display(), size.0, size.0) });
                }
                std::fs::copy(&src, &dst).map_err(|e| CreateError::Input {
                    part: part.into(),
                    detail: format!("env image {}: {e}", src.display()),
                })?;
            }
            // The env filesystem's recipe (layout::ENV_EXT4_FEATURES says why).
            let mut c = mke2fs(spec);
            c.arg("-b")
                .arg(crate::layout::ENV_EXT4_BLOCK_SIZE.to_string())
                .args(["-O", crate::layout::ENV_EXT4_FEATURES, "-L", "env", "-d"])
                .arg(&root)
                .arg(&img);
            let raw = match backend {
                crate::layout::EnvBackend::Ext4 => None,
                crate::layout::EnvBackend::Raw => {
                    let o = crate::layout::raw_env_offsets(spec).map_err(|detail| {
                        CreateError::Input {
                            part: part.into(),
                            detail,
                        }
                    })?;
                    // The filesystem ends where the first copy starts.
                    c.arg(
                        (o[0].min(o[1]) / u64::from(crate::layout::ENV_EXT4_BLOCK_SIZE))
                            .to_string(),
                    );
                    Some(o)
                }
            };
            run(&mut c, part)?;
            if let Some(offsets) = raw {
                // Both copies hold the file's env in U-Boot's redundant format (crc32 | flags |
                // data): copy 0 flags 1, copy 1 flags 0, so U-Boot and fw_printenv take copy 0.
                // Without an env file the copies stay zero (no valid copy: U-Boot's defaults).
                let f = root.join(file.trim_start_matches('/'));
                if f.exists() {
                    let single = std::fs::read(&f).map_err(io_err("env staging file"))?;
                    let n = size.0 as usize;
                    if single[n - 1] != 0 && single[n - 1] != 0xff {
                        return Err(CreateError::Input {
                            part: part.into(),
                            detail: "the env fills its last byte: no room for the redundant copies' flags byte".into(),
                        });
                    }
                    let mut out = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&img)
                        .map_err(io_err("env copies"))?;
                    for (k, off) in offsets.iter().enumerate() {
                        let copy = fw_env::codec::assemble(
                            &single[4..n - 1],
                            fw_env::codec::Layout::Redundant,
                            u8::from(k == 0),
                        );
                        use std::io::{Seek, SeekFrom, Write};
                        out.seek(SeekFrom::Start(*off))
                            .map_err(io_err("env copies"))?;
                        out.write_all(&copy).map_err(io_err("env copies"))?;
                    }
                }
            }
        }
    }
    File::open(&img)
        .map(Some)
        .map_err(io_err(format!("opening {}", img.display())))
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
