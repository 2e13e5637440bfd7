//! The only module that talks to the kernel: device size and partition-table rereads.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::io::AsRawFd;

mod ioctls {
    nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
    nix::ioctl_none!(blkrrpart, 0x12, 95);
    nix::ioctl_write_ptr_bad!(blkpg, 0x1269, super::BlkpgIoctlArg);
}
use ioctls::*;

#[repr(C)]
struct BlkpgIoctlArg {
    op: libc_int,
    flags: libc_int,
    datalen: libc_int,
    data: *mut BlkpgPartition,
}

#[allow(non_camel_case_types)]
type libc_int = std::os::raw::c_int;

#[repr(C)]
struct BlkpgPartition {
    start: i64,
    length: i64,
    pno: libc_int,
    devname: [u8; 64],
    volname: [u8; 64],
}

const BLKPG_RESIZE_PARTITION: libc_int = 3;

/// True when `f` is a block device.
pub fn is_block_device(f: &File) -> io::Result<bool> {
    Ok(f.metadata()?.file_type().is_block_device())
}

/// Size in bytes: BLKGETSIZE64 for a block device, the length for a file.
pub fn size_bytes(f: &File) -> io::Result<u64> {
    if is_block_device(f)? {
        let mut n = 0u64;
        // SAFETY: BLKGETSIZE64 writes one u64 into `n`.
        unsafe { blkgetsize64(f.as_raw_fd(), &mut n) }.map_err(io::Error::from)?;
        Ok(n)
    } else {
        Ok(f.metadata()?.len())
    }
}

/// Ask the kernel to reread the table (BLKRRPART); fails with EBUSY while partitions are in use.
pub fn reread(f: &File) -> io::Result<()> {
    if !is_block_device(f)? {
        return Ok(());
    }
    // SAFETY: BLKRRPART takes no argument.
    unsafe { blkrrpart(f.as_raw_fd()) }
        .map(|_| ())
        .map_err(io::Error::from)
}

/// Tell the kernel a partition grew (BLKPG_RESIZE_PARTITION), which works while it is mounted.
pub fn resize_partition(f: &File, number: u32, start_sector: u64, sectors: u64) -> io::Result<()> {
    if !is_block_device(f)? {
        return Ok(());
    }
    let mut part = BlkpgPartition {
        start: (start_sector * 512) as i64,
        length: (sectors * 512) as i64,
        pno: number as libc_int,
        devname: [0; 64],
        volname: [0; 64],
    };
    let arg = BlkpgIoctlArg {
        op: BLKPG_RESIZE_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc_int,
        data: &mut part,
    };
    // SAFETY: the argument struct and the partition it points to outlive the call.
    unsafe { blkpg(f.as_raw_fd(), &arg) }
        .map(|_| ())
        .map_err(io::Error::from)
}
