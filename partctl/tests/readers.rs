//! Independent readers: every layout's card, as `partctl create` writes it, reads the same in
//! the `gpt` and `mbrman` crates as in partctl (common::independent_readers_agree), and as the
//! layout says. The board's card (partctl/layouts/zbot-duos.toml, with content): peers.rs; after
//! repair: damage_matrix.rs and peers.rs; after grow: cli.rs.

mod common;
use common::*;
use partctl::layout::{Content, Layout};
use std::path::Path;

/// The QEMU machine's card (qemu/machine/layout.toml), read here, never written.
const QEMU: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../qemu/machine/layout.toml");

/// Create the layout at `path` and check that the readers agree with each other and with it.
fn created_card_reads_as_its_layout(path: &str) {
    let layout = Layout::load(Path::new(path)).unwrap();
    let d = tmp();
    let input = d.path().join("in");
    std::fs::create_dir(&input).unwrap();
    // Every input the layout names: what the files hold does not matter to the tables.
    for p in &layout.partitions {
        let put = |name: &Path, len: u64| {
            std::fs::write(input.join(name), vec![0x5A; len as usize]).unwrap()
        };
        match &p.content {
            Content::Fat32 { files, .. } => files.iter().for_each(|f| put(f, 4096)),
            Content::Ext4 { dir: Some(dir), .. } => {
                std::fs::create_dir_all(input.join(dir)).unwrap()
            }
            Content::Env {
                image: Some(image),
                size,
                ..
            } => put(image, size.0),
            Content::Raw { image } => put(image, 4096),
            _ => {}
        }
    }
    let img = d.path().join("card.img");
    partctl::create::create(&layout, &input, &img, None).unwrap();
    let parts = independent_readers_agree(&img).unwrap();
    let want: Vec<(u32, u64, u64, String, String)> = layout
        .partitions
        .iter()
        .zip(layout.place())
        .map(|(s, p)| {
            (
                p.number,
                p.first,
                p.last + 1 - p.first,
                s.uuid.to_string(),
                s.name.clone(),
            )
        })
        .collect();
    let got: Vec<(u32, u64, u64, String, String)> = parts
        .into_iter()
        .map(|(n, start, size, _, uuid, name)| (n, start, size, uuid, name))
        .collect();
    assert_eq!(got, want, "{path}");
}

#[test]
fn small_layout_card_reads_the_same_in_gpt_and_mbrman() {
    created_card_reads_as_its_layout(SMALL);
}

#[test]
fn qemu_machine_card_reads_the_same_in_gpt_and_mbrman() {
    created_card_reads_as_its_layout(QEMU);
}

/// The readers are live: a header whose CRC is wrong, or a CHS address that does not match its
/// LBA, is a disagreement, not a pass.
#[test]
fn the_readers_catch_a_bad_header_crc_and_a_wrong_chs() {
    let d = tmp();
    let img = d.path().join("card.img");
    copy_image(golden(), &img);
    independent_readers_agree(&img).unwrap();
    let mut header = read_sector(&img, 1);
    header[16] ^= 1;
    write_at(&img, 1, &header);
    let e = independent_readers_agree(&img).unwrap_err();
    assert!(e.contains("gpt crate"), "{e}");
    copy_image(golden(), &img);
    let mut mbr = read_sector(&img, 0);
    mbr[446 + 1..446 + 4].copy_from_slice(&[0, 0, 0]);
    write_at(&img, 0, &mbr);
    let e = independent_readers_agree(&img).unwrap_err();
    assert!(e.contains("CHS"), "{e}");
}
