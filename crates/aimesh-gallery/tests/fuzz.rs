//! Property-based fuzzing of the image decode path with a fixed, small budget: arbitrary bytes
//! behind each accepted format's magic number, and random mutations (overwrites, truncation,
//! insertions) of valid PNG, JPEG, WebP and GIF files. Decoding must end in an image or an
//! error, never a panic; an image must respect the limits; and whatever decodes must go
//! through thumbnails and hashing without failing. Exploring further:
//! `PROPTEST_CASES=20000 PROPTEST_RNG_SEED=<n> cargo test -p aimesh-gallery --test fuzz`.

#![allow(clippy::unwrap_used)]

use std::sync::LazyLock;

use aimesh_gallery::{
    DecodeLimits, decode,
    imaging::prepare,
    samples::{self, landscape},
};
use image::{DynamicImage, ImageFormat};
use proptest::{
    prelude::*,
    test_runner::{Config, RngSeed},
};

const LIMITS: DecodeLimits = DecodeLimits {
    max_bytes: 256 << 10,
    max_pixels: 512 * 512,
    max_side: 2048,
};

fn check(bytes: &[u8]) {
    let Ok(decoded) = decode(bytes, &LIMITS) else {
        return;
    };
    let (w, h) = (decoded.image.width(), decoded.image.height());
    assert!(w > 0 && h > 0);
    assert!(u64::from(w) * u64::from(h) <= LIMITS.max_pixels);
    let prepared = prepare(&decoded.image, decoded.format, None).unwrap();
    assert_eq!((prepared.width, prepared.height), (w, h));
    assert!(!prepared.thumbnail_256.bytes.is_empty());
}

static VALID: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let photo = DynamicImage::ImageRgb8(landscape(40, 30, 7));
    vec![
        samples::encode(&photo, ImageFormat::Png),
        samples::jpeg(&photo.to_rgb8(), &samples::exif_with_gps(3)),
        samples::encode(&photo, ImageFormat::WebP),
        samples::encode(
            &DynamicImage::ImageRgba8(photo.to_rgba8()),
            ImageFormat::Gif,
        ),
    ]
});

const MAGICS: [&[u8]; 5] = [
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"GIF89a",
    b"GIF87a",
];

#[derive(Debug, Clone)]
enum Mutation {
    Overwrite(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Overwrite(at, byte)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        if bytes.is_empty() {
            break;
        }
        match mutation {
            Mutation::Overwrite(at, byte) => {
                let at = at % bytes.len();
                bytes[at] = *byte;
            }
            Mutation::Truncate(at) => bytes.truncate(at % bytes.len()),
            Mutation::Insert(at, insert) => {
                let at = at % bytes.len();
                bytes.splice(at..at, insert.iter().copied());
            }
        }
    }
    bytes
}

fn config() -> Config {
    Config {
        cases: 192,
        rng_seed: RngSeed::Fixed(0x6a11_e9e5),
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_behind_a_magic_never_panic(
        magic in 0..MAGICS.len(),
        tail in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut bytes = MAGICS[magic].to_vec();
        bytes.extend(tail);
        check(&bytes);
    }

    #[test]
    fn mutated_valid_images_never_panic(
        which in 0..4usize,
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        check(&mutate(VALID[which].clone(), &mutations));
    }

    #[test]
    fn headers_declaring_any_size_are_checked_before_decoding(
        width in 1u32..=u32::MAX,
        height in 1u32..=u32::MAX,
    ) {
        // A PNG header alone: large declarations are refused from it, small ones fail as
        // truncated, and neither allocates the declared pixels.
        let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        bytes.extend(width.to_be_bytes());
        bytes.extend(height.to_be_bytes());
        bytes.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
        prop_assert!(decode(&bytes, &LIMITS).is_err());
    }
}

#[test]
fn the_valid_seeds_decode() {
    for bytes in VALID.iter() {
        assert!(decode(bytes, &LIMITS).is_ok());
    }
}
