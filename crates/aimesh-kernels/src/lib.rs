//! SIMD kernels of aimesh's inference engines: products with matrices of GGUF's 32-value
//! block types (Q4_0, Q4_1, Q8_0) on tiled kernels.
//!
//! This is the one crate of the workspace that allows unsafe code: SIMD loads and stores,
//! and the disjoint writes of a product's threads into one output. Every unsafe block says
//! why it is sound.
//!
//! candle multiplies Q4_0 and Q4_1 matrices one output row at a time with a generic dot
//! product, and Q8_0 ones with tiled kernels only when they are a multiple of 256 wide
//! (narrower ones are padded, a third more weights to read for SmolLM2's 576-wide rows).
//! Here each 32-value block of 16 rows becomes one tile: the rows' values interleaved four
//! at a time, then the rows' scales (and Q4_1's minimums). One `vpdpbusd` (AVX-512 VNNI), or
//! a `vpmaddubsw` (AVX2: half the rows), then multiplies four values of all 16 rows by the
//! same four activations, and the weights are read once for up to [`ROWS`] rows of
//! activations.
//! Repacking is lossless: each weight keeps its value and its block's f16 scale, and a tile
//! is as large as the blocks it holds (Q8_0 values are stored plus 128, Q4_0's plus 8, so
//! both are unsigned with an offset of −128 or −8 scales per value).
//!
//! The activations are quantized to 8 bits per 32-value block with their scaled sum (GGML's
//! Q8_1, with f32 scales), so a product is the one GGML's dot products give, up to the
//! rounding of the activations' scales and the order of the float sums. The work is split by
//! tiles of 16 rows across candle's persistent worker threads, so it shares them with
//! candle's own kernels instead of adding threads.
//!
//! Where the CPU has AMX-INT8 (and Linux grants the process its tile state), 16 rows of
//! activations or more (a prompt) go through AMX instead: the same tiles, unpacked to bytes
//! once per 16 rows of the matrix, are exactly the layout of `tdpbsud`'s second operand, so
//! one instruction multiplies a 32-value block of 16 rows of activations by the 16 rows of
//! the matrix, and AVX-512 applies the blocks' scales to the 16 × 16 integer sums.
//! `AIMESH_AMX=off` keeps such CPUs on AVX-512 VNNI.
//!
//! [`attention`] is an encoder's attention fused per block of queries, on gemm's f32
//! kernels (the ones candle's products use), the scores kept in each thread's cache.

mod attention;

pub use attention::attention;

use std::{fmt, sync::OnceLock};

use candle_core::{
    Result, bail,
    quantized::{GgmlDType, QTensor},
};

/// Values per block of GGUF's Q4_0, Q4_1 and Q8_0.
const BLOCK: usize = 32;
/// Rows of the matrix per tile.
const TILE: usize = 16;
/// Rows of activations multiplied in one pass over the weights.
const ROWS: usize = 4;

/// One block of 16 rows of 4-bit values.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Tile4 {
    /// `[group of 8 values (4)][row (16)][4 bytes]`: byte `j` of a row's four holds value
    /// `8g + j` in its low nibble and value `8g + 4 + j` in its high nibble.
    nibbles: [u8; 256],
    /// Each row's scale (f16 bits).
    scales: [u16; TILE],
    /// Each row's offset, added to every value of the block (f16 bits): Q4_1's minimum, or
    /// −8 × the scale for Q4_0.
    offsets: [u16; TILE],
}

/// One block of 16 rows of 8-bit values.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Tile8 {
    /// `[group of 4 values (8)][row (16)][4 bytes]`, each value plus 128.
    values: [u8; 512],
    /// Each row's scale (f16 bits); every value is offset by −128 scales.
    scales: [u16; TILE],
}

/// The tiles of a matrix, `[tile of 16 rows][block]`.
enum Packed {
    Four(Vec<Tile4>),
    Eight(Vec<Tile8>),
}

/// One block of activations, quantized to 8 bits. The values come first: AMX loads the
/// values of 16 rows' blocks with the stride between rows.
#[repr(C)]
#[derive(Clone, Copy)]
struct Activation {
    values: [i8; BLOCK],
    scale: f32,
    /// `scale × Σ values`, which multiplies the weights' offsets.
    sum: f32,
}

impl Activation {
    /// The missing rows of AMX's last pass.
    const ZERO: Self = Self {
        values: [0; BLOCK],
        scale: 0.0,
        sum: 0.0,
    };
}

/// The instruction set a kernel needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// AMX-INT8 for 16 rows of activations or more, AVX-512 VNNI for fewer.
    Amx,
    Avx512Vnni,
    Avx2,
}

impl Kernel {
    fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let base = has!("avx2") && has!("fma") && has!("f16c");
            if base && has!("avx512f") && has!("avx512bw") && has!("avx512vnni") {
                return Some(if amx_enabled() {
                    Self::Amx
                } else {
                    Self::Avx512Vnni
                });
            }
            if base {
                return Some(Self::Avx2);
            }
        }
        None
    }
}

/// Whether this CPU multiplies 8-bit blocks with VNNI (AVX-512 VNNI, or AMX-INT8 beside
/// it): there [`Tiles`]' 8-bit products outrun f32 ones several times over. On AVX2 alone
/// they take two instructions per four values and are about as fast as f32 products.
pub fn has_vnni() -> bool {
    matches!(Kernel::detect(), Some(Kernel::Amx | Kernel::Avx512Vnni))
}

/// Whether this CPU has AMX-INT8 and the process may use its tile state (Linux hands out the
/// 8 KiB of tile data only to processes that ask), unless `AIMESH_AMX=off`.
fn amx_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        let off = std::env::var("AIMESH_AMX").is_ok_and(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "off" | "0" | "false" | "no"
            )
        });
        !off && amx_granted()
    })
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn amx_granted() -> bool {
    // CPUID leaf 7 (the caller saw AVX-512, so the CPU has it): EDX bit 24 is AMX-TILE and
    // bit 25 AMX-INT8.
    let amx = 0b11 << 24;
    if std::arch::x86_64::__cpuid_count(7, 0).edx & amx != amx {
        return false;
    }
    // Linux's arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA).
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: this request only asks the kernel to let the process's threads use the tile
    // state; it reads and writes no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn amx_granted() -> bool {
    false
}

/// A Q4_0, Q4_1 or Q8_0 matrix repacked into tiles of 16 rows, multiplied on every core.
pub struct Tiles {
    packed: Packed,
    blocks: usize,
    outputs: usize,
    kernel: Kernel,
}

impl fmt::Debug for Tiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tiles")
            .field("outputs", &self.outputs)
            .field("inputs", &self.inputs())
            .field(
                "bits",
                &match self.packed {
                    Packed::Four(_) => 4,
                    Packed::Eight(_) => 8,
                },
            )
            .field("kernel", &self.kernel)
            .finish()
    }
}

/// A block's f16 scale (or minimum) at `at` of its bytes.
fn f16_at(raw: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([raw[at], raw[at + 1]])
}

impl Tiles {
    /// Repacks `tensor` (`outputs × inputs`), or `None` when this CPU has no kernel for its
    /// type: every kernel needs AVX2, FMA and F16C.
    pub fn pack(tensor: &QTensor) -> Result<Option<Self>> {
        let Some(kernel) = Kernel::detect() else {
            return Ok(None);
        };
        Self::pack_for(tensor, kernel)
    }

    fn pack_for(tensor: &QTensor, kernel: Kernel) -> Result<Option<Self>> {
        // GGUF's layouts: an f16 scale, for Q4_1 an f16 minimum, then the values: for the
        // 4-bit types 16 bytes, value j in the low nibble of byte j and value j + 16 in its
        // high nibble; for Q8_0 32 signed bytes.
        let block_bytes = match tensor.dtype() {
            GgmlDType::Q4_0 => 18,
            GgmlDType::Q4_1 => 20,
            GgmlDType::Q8_0 => 34,
            _ => return Ok(None),
        };
        let (outputs, inputs) = tensor.shape().dims2()?;
        if !inputs.is_multiple_of(BLOCK) {
            bail!("a matrix {inputs} wide: not whole blocks of {BLOCK}");
        }
        let blocks = inputs / BLOCK;
        let data = tensor.data()?;
        if data.len() != outputs * blocks * block_bytes {
            bail!(
                "a {outputs}x{inputs} matrix of {} bytes, expected {}",
                data.len(),
                outputs * blocks * block_bytes
            );
        }
        let count = outputs.div_ceil(TILE) * blocks;
        let rows = data.chunks_exact(blocks * block_bytes).enumerate();
        let packed = match tensor.dtype() {
            GgmlDType::Q8_0 => {
                let empty = Tile8 {
                    values: [128; 512],
                    scales: [0; TILE],
                };
                let mut tiles = vec![empty; count];
                for (row, raw_row) in rows {
                    let lane = row % TILE;
                    let row_tiles = &mut tiles[row / TILE * blocks..][..blocks];
                    for (tile, raw) in row_tiles.iter_mut().zip(raw_row.chunks_exact(block_bytes)) {
                        tile.scales[lane] = f16_at(raw, 0);
                        for (i, &q) in raw[2..].iter().enumerate() {
                            tile.values[i / 4 * 64 + lane * 4 + i % 4] = q ^ 0x80;
                        }
                    }
                }
                Packed::Eight(tiles)
            }
            dtype => {
                let minimum = dtype == GgmlDType::Q4_1;
                let empty = Tile4 {
                    nibbles: [0; 256],
                    scales: [0; TILE],
                    offsets: [0; TILE],
                };
                let mut tiles = vec![empty; count];
                for (row, raw_row) in rows {
                    let lane = row % TILE;
                    let row_tiles = &mut tiles[row / TILE * blocks..][..blocks];
                    for (tile, raw) in row_tiles.iter_mut().zip(raw_row.chunks_exact(block_bytes)) {
                        let scale = f16_at(raw, 0);
                        let (offset, packed) = if minimum {
                            (f16_at(raw, 2), &raw[4..])
                        } else {
                            // Q4_0's values are stored plus 8: w = scale × (q − 8).
                            let scale = half::f16::from_bits(scale).to_f32();
                            (half::f16::from_f32(-8.0 * scale).to_bits(), &raw[2..])
                        };
                        tile.scales[lane] = scale;
                        tile.offsets[lane] = offset;
                        let value = |j: usize| {
                            if j < 16 {
                                packed[j] & 0x0F
                            } else {
                                packed[j - 16] >> 4
                            }
                        };
                        for group in 0..4 {
                            for j in 0..4 {
                                tile.nibbles[group * 64 + lane * 4 + j] =
                                    value(8 * group + j) | (value(8 * group + 4 + j) << 4);
                            }
                        }
                    }
                }
                Packed::Four(tiles)
            }
        };
        Ok(Some(Self {
            packed,
            blocks,
            outputs,
            kernel,
        }))
    }

    /// The matrix's width.
    pub fn inputs(&self) -> usize {
        self.blocks * BLOCK
    }

    /// `x · weightᵀ` for the `rows` rows of `x`, row after row.
    pub fn multiply(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let inputs = self.inputs();
        if inputs == 0 || x.len() != rows * inputs {
            bail!(
                "{} values for {rows} rows of a matrix {inputs} wide",
                x.len()
            );
        }
        let mut activations: Vec<Activation> = x.chunks_exact(BLOCK).map(quantize_block).collect();
        let width = self.width();
        let mut out = vec![0f32; rows * width];
        if self.kernel == Kernel::Amx && rows >= TILE {
            // AMX multiplies 16 rows at a time: the last pass's missing rows are zeros.
            activations.resize(rows.next_multiple_of(TILE) * self.blocks, Activation::ZERO);
            self.amx_product(&activations, rows, &mut out);
        } else {
            self.vector_product(&activations, rows, &mut out);
        }
        if width != self.outputs {
            let outputs = self.outputs;
            for row in 1..rows {
                out.copy_within(row * width..row * width + outputs, row * outputs);
            }
            out.truncate(rows * outputs);
        }
        Ok(out)
    }

    /// The width of a product's rows before they are cut to `outputs`: whole tiles.
    fn width(&self) -> usize {
        self.outputs.next_multiple_of(TILE)
    }

    /// The product on AVX2 or AVX-512 VNNI, into `out` (`rows` rows of whole tiles).
    fn vector_product(&self, activations: &[Activation], rows: usize, out: &mut [f32]) {
        let width = self.width();
        let row_tiles = width / TILE;
        let chunks = rows.div_ceil(ROWS);
        // Units run tile by tile, so that each thread streams through neighbouring weights.
        let target = out.as_mut_ptr() as usize;
        candle_core::utils::barrier_pool().execute_chunked(row_tiles * chunks, |units| {
            for unit in units {
                let (tile, chunk) = (unit / chunks, unit % chunks);
                let first = chunk * ROWS;
                let count = ROWS.min(rows - first);
                let mut acts: [&[Activation]; ROWS] = [&[]; ROWS];
                for (r, act) in acts.iter_mut().take(count).enumerate() {
                    *act = &activations[(first + r) * self.blocks..][..self.blocks];
                }
                let mut sums = [[0f32; TILE]; ROWS];
                self.tile_product(tile, &acts[..count], &mut sums);
                for (r, sums) in sums.iter().take(count).enumerate() {
                    // SAFETY: each unit writes only its own tile's 16 columns of its own
                    // rows, inside `out`, which outlives the pool's call.
                    unsafe {
                        let at = (target as *mut f32).add((first + r) * width + tile * TILE);
                        std::ptr::copy_nonoverlapping(sums.as_ptr(), at, TILE);
                    }
                }
            }
        });
    }

    /// The product on AMX, into `out` (`rows` rows of whole tiles); `activations` has whole
    /// passes of 16 rows. Each unit of work is one tile of 16 rows of the matrix, unpacked
    /// once and multiplied by every row of activations.
    fn amx_product(&self, activations: &[Activation], rows: usize, out: &mut [f32]) {
        let width = self.width();
        let row_tiles = width / TILE;
        let target = out.as_mut_ptr() as usize;
        candle_core::utils::barrier_pool().execute_chunked(row_tiles, |units| {
            #[cfg(target_arch = "x86_64")]
            UNPACKED.with_borrow_mut(|unpacked| {
                // SAFETY: the kernel is `Amx` only where the CPU has AMX-INT8 and Linux
                // granted the process its tile state.
                let _tiles = unsafe { x86::AmxTiles::configure() };
                for tile in units {
                    let at = tile * self.blocks..(tile + 1) * self.blocks;
                    let out = (target as *mut f32).wrapping_add(tile * TILE);
                    unpacked.clear();
                    // SAFETY: AMX's CPUs have AVX-512 (the kernel's detection checked it) and
                    // the tile state is configured (above); `activations` holds whole passes
                    // of 16 rows of `blocks` blocks; the unit writes only its own tile's 16
                    // columns of the first `rows` rows of `out`, which outlives the pool's
                    // call.
                    unsafe {
                        match &self.packed {
                            Packed::Four(tiles) => {
                                x86::unpack_four(&tiles[at], unpacked);
                                x86::amx_tile::<false>(unpacked, activations, rows, out, width)
                            }
                            Packed::Eight(tiles) => {
                                x86::unpack_eight(&tiles[at], unpacked);
                                x86::amx_tile::<true>(unpacked, activations, rows, out, width)
                            }
                        }
                    }
                }
            });
            #[cfg(not(target_arch = "x86_64"))]
            {
                let _ = (units, activations, rows, target, width);
                unreachable!("AMX is an x86-64 extension");
            }
        });
    }

    /// Tile `tile`'s 16 rows times each row of `acts`, into `sums`.
    fn tile_product(&self, tile: usize, acts: &[&[Activation]], sums: &mut [[f32; TILE]; ROWS]) {
        let at = tile * self.blocks..(tile + 1) * self.blocks;
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `kernel` was chosen by detecting the instructions each kernel enables.
        unsafe {
            match (&self.packed, self.kernel) {
                (Packed::Four(tiles), Kernel::Avx512Vnni | Kernel::Amx) => {
                    x86::four_bit_512(&tiles[at], acts, sums)
                }
                (Packed::Four(tiles), Kernel::Avx2) => x86::four_bit_256(&tiles[at], acts, sums),
                (Packed::Eight(tiles), Kernel::Avx512Vnni | Kernel::Amx) => {
                    x86::eight_bit_512(&tiles[at], acts, sums)
                }
                (Packed::Eight(tiles), Kernel::Avx2) => x86::eight_bit_256(&tiles[at], acts, sums),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (at, acts, sums);
            unreachable!("no tiles without a kernel");
        }
    }
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// Each thread's unpacked blocks of the tile of the matrix it multiplies on AMX.
    static UNPACKED: std::cell::RefCell<Vec<x86::Unpacked>> = const {
        std::cell::RefCell::new(Vec::new())
    };
}

/// Runs `f(index, chunk)` on each `len`-long chunk of `out` (the last may be shorter), the
/// chunks spread over candle's persistent worker threads: the threads the matrix products
/// use, already awake between them, where a second pool (rayon's) would have to be woken
/// and would compete with them for the cores.
pub fn for_each_chunk(out: &mut [f32], len: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if len == 0 || out.is_empty() {
        return;
    }
    let (total, chunks) = (out.len(), out.len().div_ceil(len));
    if chunks == 1 {
        f(0, out);
        return;
    }
    let base = out.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(chunks, |indices| {
        for index in indices {
            let start = index * len;
            let end = total.min(start + len);
            // SAFETY: chunk `index` is `out[start..end]`, inside `out`; each index is handed
            // to exactly one call, so no two live slices overlap, and `out` is borrowed
            // mutably for the whole pool call, which returns only when every chunk is done.
            let chunk = unsafe {
                std::slice::from_raw_parts_mut((base as *mut f32).add(start), end - start)
            };
            f(index, chunk);
        }
    });
}

/// One block of activations as GGML's Q8_1 quantizes it: a scale mapping the largest
/// magnitude to 127, values rounded to nearest.
fn quantize_block(x: &[f32]) -> Activation {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: there are tiles to multiply only where a kernel was detected, and every kernel
    // needs AVX2 (and FMA).
    unsafe {
        x86::quantize(x)
    }
    #[cfg(not(target_arch = "x86_64"))]
    quantize(x)
}

/// [`quantize_block`] one value at a time (ties rounded to even, as SIMD rounds them).
#[cfg(any(test, not(target_arch = "x86_64")))]
fn quantize(x: &[f32]) -> Activation {
    let largest = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = largest / 127.0;
    let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    let mut values = [0i8; BLOCK];
    let mut total = 0i32;
    for (q, &v) in values.iter_mut().zip(x) {
        *q = (v * inverse).round_ties_even() as i8;
        total += i32::from(*q);
    }
    Activation {
        values,
        scale,
        sum: scale * total as f32,
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::{asm, x86_64::*};

    use super::{Activation, ROWS, TILE, Tile4, Tile8};

    /// One block of a tile of 16 rows unpacked for AMX: the product's second operand, 8 rows
    /// of 64 bytes (`[group of 4 values][row of the matrix][4 values]`; 4-bit values
    /// unsigned, 8-bit ones signed), with the rows' scales and (4-bit) offsets.
    #[repr(C, align(64))]
    pub(super) struct Unpacked {
        values: [u8; 512],
        scales: [f32; TILE],
        offsets: [f32; TILE],
    }

    impl Unpacked {
        const EMPTY: Self = Self {
            values: [0; 512],
            scales: [0.0; TILE],
            offsets: [0.0; TILE],
        };
    }

    /// AMX's tile registers as `amx_tile` uses them, twice over (tmm0–2 and tmm3–5): the
    /// 16 × 16 sums (64 bytes a row), 16 rows of a block of activations (32 bytes), the
    /// matrix's block (8 rows of 64 bytes). The layout is `ldtilecfg`'s (palette 1).
    #[repr(C, align(64))]
    struct TileConfig([u8; 64]);

    static CONFIG: TileConfig = {
        let mut config = [0u8; 64];
        config[0] = 1;
        let tiles: [(u8, u16); 6] = [(16, 64), (16, 32), (8, 64), (16, 64), (16, 32), (8, 64)];
        let mut t = 0;
        while t < tiles.len() {
            let (rows, bytes) = tiles[t];
            let bytes = bytes.to_le_bytes();
            config[16 + 2 * t] = bytes[0];
            config[17 + 2 * t] = bytes[1];
            config[48 + t] = rows;
            t += 1;
        }
        TileConfig(config)
    };

    /// The tile registers configured on this thread, released on drop.
    pub(super) struct AmxTiles(());

    impl AmxTiles {
        /// # Safety
        /// The CPU has AMX and the OS granted the process its tile state.
        pub(super) unsafe fn configure() -> Self {
            // SAFETY: `CONFIG` is a valid 64-byte palette-1 configuration (the caller vouches
            // for AMX itself).
            unsafe { asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack)) };
            Self(())
        }
    }

    impl Drop for AmxTiles {
        fn drop(&mut self) {
            // SAFETY: the tiles were configured by `configure`; releasing them returns the
            // thread to its initial tile state.
            unsafe { asm!("tilerelease", options(nostack, nomem)) };
        }
    }

    /// Unpacks the 4-bit `tiles` (one tile's blocks) into `out`.
    #[target_feature(enable = "avx512f,avx512bw,f16c")]
    pub(super) fn unpack_four(tiles: &[Tile4], out: &mut Vec<Unpacked>) {
        let low = _mm512_set1_epi8(0x0F);
        for tile in tiles {
            let mut block = Unpacked::EMPTY;
            // SAFETY: the loads read inside `tile` and the stores write inside `block`, both
            // 64-byte aligned.
            unsafe {
                let (from, to) = (tile.nibbles.as_ptr(), block.values.as_mut_ptr());
                for g in 0..4 {
                    // A group's low nibbles are values 8g..8g+3 of each row, its high ones
                    // values 8g+4..8g+7: rows 2g and 2g + 1 of the operand.
                    let w = _mm512_load_si512(from.add(64 * g).cast());
                    let (lo, hi) = (
                        _mm512_and_si512(w, low),
                        _mm512_and_si512(_mm512_srli_epi16::<4>(w), low),
                    );
                    _mm512_store_si512(to.add(128 * g).cast(), lo);
                    _mm512_store_si512(to.add(128 * g + 64).cast(), hi);
                }
                let scales = _mm512_cvtph_ps(_mm256_loadu_si256(tile.scales.as_ptr().cast()));
                let offsets = _mm512_cvtph_ps(_mm256_loadu_si256(tile.offsets.as_ptr().cast()));
                _mm512_store_ps(block.scales.as_mut_ptr(), scales);
                _mm512_store_ps(block.offsets.as_mut_ptr(), offsets);
            }
            out.push(block);
        }
    }

    /// Unpacks the 8-bit `tiles` (one tile's blocks) into `out`, signed again (the tiles
    /// store them plus 128 for VNNI, whose first operand is unsigned): the values are
    /// already in the operand's layout, and have no offsets.
    #[target_feature(enable = "avx512f,avx512bw,f16c")]
    pub(super) fn unpack_eight(tiles: &[Tile8], out: &mut Vec<Unpacked>) {
        let bias = _mm512_set1_epi8(-128);
        for tile in tiles {
            let mut block = Unpacked::EMPTY;
            // SAFETY: the loads read inside `tile` and the stores write inside `block`, both
            // 64-byte aligned.
            unsafe {
                let (from, to) = (tile.values.as_ptr(), block.values.as_mut_ptr());
                for g in 0..8 {
                    let w = _mm512_load_si512(from.add(64 * g).cast());
                    _mm512_store_si512(to.add(64 * g).cast(), _mm512_xor_si512(w, bias));
                }
                let scales = _mm512_cvtph_ps(_mm256_loadu_si256(tile.scales.as_ptr().cast()));
                _mm512_store_ps(block.scales.as_mut_ptr(), scales);
            }
            out.push(block);
        }
    }

    /// One block's product on AMX: zero the sums' tile, load 16 rows of 32 activations and
    /// the matrix's 8 rows of 64 bytes, multiply (`tdpbssd` signed by signed, `tdpbsud`
    /// signed by unsigned) and store the 16 × 16 sums.
    macro_rules! block_product {
        ($op:literal, $c:literal, $a:literal, $w:literal, $ap:expr, $stride:expr, $wp:expr, $cp:expr) => {
            asm!(
                concat!("tilezero ", $c),
                concat!("tileloadd ", $a, ", [{a} + {a_stride}*1]"),
                concat!("tileloadd ", $w, ", [{w} + {row}*1]"),
                concat!($op, " ", $c, ", ", $a, ", ", $w),
                concat!("tilestored [{c} + {row}*1], ", $c),
                a = in(reg) $ap,
                a_stride = in(reg) $stride,
                w = in(reg) $wp,
                c = in(reg) $cp,
                row = in(reg) 64usize,
                options(nostack),
            )
        };
    }

    /// The sums of one block of 16 rows of activations by 16 rows of the matrix, row after
    /// row of activations.
    #[repr(C, align(64))]
    struct Sums([i32; TILE * TILE]);

    /// The unpacked blocks of one tile of 16 rows times the first `rows` rows of
    /// `activations`, into `out[row × width..][..16]`. `SIGNED` blocks hold signed values
    /// and no offsets.
    ///
    /// Blocks are software-pipelined: the tile unit multiplies block `b` into one of two
    /// buffers of sums while the vector units scale the other's, block `b − 1`, so neither
    /// waits for the other's latency.
    ///
    /// # Safety
    /// The tile registers are configured ([`AmxTiles`]); `activations` holds
    /// `rows.next_multiple_of(16)` rows of `blocks.len()` blocks; `out` is valid for writes
    /// of 16 floats at each `row × width`, `row < rows`, and nothing else writes there.
    #[target_feature(enable = "avx512f,avx512bw,fma")]
    pub(super) unsafe fn amx_tile<const SIGNED: bool>(
        blocks: &[Unpacked],
        activations: &[Activation],
        rows: usize,
        out: *mut f32,
        width: usize,
    ) {
        let count = blocks.len();
        let stride = count * size_of::<Activation>();
        let mut sums = [Sums([0; TILE * TILE]), Sums([0; TILE * TILE])];
        for first in (0..rows).step_by(TILE) {
            let pass = &activations[first * count..(first + TILE) * count];
            let mut acc = [_mm512_setzero_ps(); TILE];
            for b in 0..=count {
                if b < count {
                    let (a, w, c) = (
                        pass[b].values.as_ptr(),
                        blocks[b].values.as_ptr(),
                        sums[b % 2].0.as_mut_ptr(),
                    );
                    // SAFETY: the A operand (tmm1 or tmm4) reads 16 rows of 32 bytes,
                    // `stride` apart, from block `b` of the pass's first row: the values of
                    // block `b` of each of its 16 rows, all inside `pass` (`Activation` is
                    // `repr(C)`, values first). The B operand (tmm2, tmm5) reads the 8 rows
                    // of 64 bytes of block `b`'s values; the sums (tmm0, tmm3) are stored to
                    // the 16 rows of 64 bytes of one of `sums`. Tile registers are not
                    // renamed: alternate blocks take different ones, so one block's product
                    // need not wait for the last one's store.
                    unsafe {
                        match (SIGNED, b % 2 == 0) {
                            (true, true) => {
                                block_product!("tdpbssd", "tmm0", "tmm1", "tmm2", a, stride, w, c)
                            }
                            (true, false) => {
                                block_product!("tdpbssd", "tmm3", "tmm4", "tmm5", a, stride, w, c)
                            }
                            (false, true) => {
                                block_product!("tdpbsud", "tmm0", "tmm1", "tmm2", a, stride, w, c)
                            }
                            (false, false) => {
                                block_product!("tdpbsud", "tmm3", "tmm4", "tmm5", a, stride, w, c)
                            }
                        }
                    }
                }
                let Some(b) = b.checked_sub(1) else {
                    continue;
                };
                let (block, sums) = (&blocks[b], &sums[b % 2]);
                // SAFETY: the loads read inside `block` (64-byte aligned).
                let (scales, offsets) = unsafe {
                    (
                        _mm512_load_ps(block.scales.as_ptr()),
                        _mm512_load_ps(block.offsets.as_ptr()),
                    )
                };
                // Block `b` of the pass's first row; row `m`'s is `count` blocks further.
                let column = pass[b..].as_ptr();
                for (m, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: `pass` holds 16 rows of `count` blocks, and `b < count`; row
                    // `m` of `sums` is 16 sums, 64-byte aligned.
                    let (a, dot) = unsafe {
                        (
                            &*column.add(m * count),
                            _mm512_load_si512(sums.0.as_ptr().add(TILE * m).cast()),
                        )
                    };
                    let factor = _mm512_mul_ps(scales, _mm512_set1_ps(a.scale));
                    *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), factor, *acc);
                    if !SIGNED {
                        *acc = _mm512_fmadd_ps(offsets, _mm512_set1_ps(a.sum), *acc);
                    }
                }
            }
            for (m, acc) in acc.iter().enumerate().take(rows - first) {
                // SAFETY: row `first + m < rows`: the caller vouches for the 16 floats there.
                unsafe { _mm512_storeu_ps(out.add((first + m) * width), *acc) };
            }
        }
    }

    /// One block of 32 activations quantized to 8 bits (see `quantize_block`).
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn quantize(x: &[f32]) -> Activation {
        assert_eq!(x.len(), 32, "a block is 32 values");
        // SAFETY: the loads read the 32 floats of `x`, the store writes the 32 bytes of
        // `values`.
        unsafe {
            let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(x.as_ptr().add(8 * i)));
            let sign = _mm256_set1_ps(-0.0);
            let magnitude = v.map(|v| _mm256_andnot_ps(sign, v));
            let m = _mm256_max_ps(
                _mm256_max_ps(magnitude[0], magnitude[1]),
                _mm256_max_ps(magnitude[2], magnitude[3]),
            );
            let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let largest = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
            let scale = largest / 127.0;
            let inverse = _mm256_set1_ps(if scale > 0.0 { 1.0 / scale } else { 0.0 });
            let q = v.map(|v| {
                _mm256_cvtps_epi32(_mm256_round_ps::<
                    { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                >(_mm256_mul_ps(v, inverse)))
            });
            // The sum of the 32 integers.
            let total =
                _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
            let total = _mm_add_epi32(
                _mm256_castsi256_si128(total),
                _mm256_extracti128_si256::<1>(total),
            );
            let total = _mm_add_epi32(total, _mm_shuffle_epi32::<0b01_00_11_10>(total));
            let total = _mm_cvtsi128_si32(_mm_add_epi32(
                total,
                _mm_shuffle_epi32::<0b10_11_00_01>(total),
            ));
            // Packing works within 128-bit lanes: the permutation puts the values back in order.
            let packed = _mm256_packs_epi16(
                _mm256_packs_epi32(q[0], q[1]),
                _mm256_packs_epi32(q[2], q[3]),
            );
            let packed =
                _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            let mut values = [0i8; 32];
            _mm256_storeu_si256(values.as_mut_ptr().cast(), packed);
            Activation {
                values,
                scale,
                sum: scale * total as f32,
            }
        }
    }

    /// Activations `at..at + 4` of `values` as one 32-bit lane.
    #[inline(always)]
    fn four(values: &[i8; 32], at: usize) -> i32 {
        i32::from_le_bytes([
            values[at] as u8,
            values[at + 1] as u8,
            values[at + 2] as u8,
            values[at + 3] as u8,
        ])
    }

    /// The 16 rows of 4-bit `tiles` times each row of `acts`, into `sums`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    pub(super) fn four_bit_512(
        tiles: &[Tile4],
        acts: &[&[Activation]],
        sums: &mut [[f32; TILE]; ROWS],
    ) {
        let low = _mm512_set1_epi8(0x0F);
        let mut scaled = [_mm512_setzero_ps(); ROWS];
        let mut offset = [_mm512_setzero_ps(); ROWS];
        for (b, tile) in tiles.iter().enumerate() {
            // SAFETY: the loads read inside `tile` (64-byte aligned).
            let (nibbles, scales, offsets) = unsafe {
                let p = tile.nibbles.as_ptr();
                let mut n = [(_mm512_setzero_si512(), _mm512_setzero_si512()); 4];
                for (g, n) in n.iter_mut().enumerate() {
                    let w = _mm512_load_si512(p.add(64 * g).cast());
                    *n = (
                        _mm512_and_si512(w, low),
                        _mm512_and_si512(_mm512_srli_epi16::<4>(w), low),
                    );
                }
                (
                    n,
                    _mm512_cvtph_ps(_mm256_loadu_si256(tile.scales.as_ptr().cast())),
                    _mm512_cvtph_ps(_mm256_loadu_si256(tile.offsets.as_ptr().cast())),
                )
            };
            for ((scaled, offset), act) in scaled.iter_mut().zip(&mut offset).zip(acts) {
                let a = &act[b];
                let mut dots = [_mm512_setzero_si512(); 2];
                for (g, &(lo, hi)) in nibbles.iter().enumerate() {
                    let d = &mut dots[g & 1];
                    *d = _mm512_dpbusd_epi32(*d, lo, _mm512_set1_epi32(four(&a.values, 8 * g)));
                    *d = _mm512_dpbusd_epi32(*d, hi, _mm512_set1_epi32(four(&a.values, 8 * g + 4)));
                }
                let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(dots[0], dots[1]));
                let factor = _mm512_mul_ps(scales, _mm512_set1_ps(a.scale));
                *scaled = _mm512_fmadd_ps(dot, factor, *scaled);
                *offset = _mm512_fmadd_ps(offsets, _mm512_set1_ps(a.sum), *offset);
            }
        }
        for ((sums, scaled), offset) in sums.iter_mut().zip(scaled).zip(offset).take(acts.len()) {
            // SAFETY: `sums` holds 16 floats.
            unsafe { _mm512_storeu_ps(sums.as_mut_ptr(), _mm512_add_ps(scaled, offset)) };
        }
    }

    /// The 16 rows of 8-bit `tiles` times each row of `acts`, into `sums`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    pub(super) fn eight_bit_512(
        tiles: &[Tile8],
        acts: &[&[Activation]],
        sums: &mut [[f32; TILE]; ROWS],
    ) {
        let mut scaled = [_mm512_setzero_ps(); ROWS];
        let mut offset = [_mm512_setzero_ps(); ROWS];
        for (b, tile) in tiles.iter().enumerate() {
            // SAFETY: the loads read inside `tile` (64-byte aligned).
            let (values, scales) = unsafe {
                let p = tile.values.as_ptr();
                let mut v = [_mm512_setzero_si512(); 8];
                for (g, v) in v.iter_mut().enumerate() {
                    *v = _mm512_load_si512(p.add(64 * g).cast());
                }
                (
                    v,
                    _mm512_cvtph_ps(_mm256_loadu_si256(tile.scales.as_ptr().cast())),
                )
            };
            for ((scaled, offset), act) in scaled.iter_mut().zip(&mut offset).zip(acts) {
                let a = &act[b];
                let mut dots = [_mm512_setzero_si512(); 2];
                for (g, &v) in values.iter().enumerate() {
                    let d = &mut dots[g & 1];
                    *d = _mm512_dpbusd_epi32(*d, v, _mm512_set1_epi32(four(&a.values, 4 * g)));
                }
                let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(dots[0], dots[1]));
                let factor = _mm512_mul_ps(scales, _mm512_set1_ps(a.scale));
                *scaled = _mm512_fmadd_ps(dot, factor, *scaled);
                // The values are stored plus 128: take 128 × scale × Σ activations off.
                *offset = _mm512_fmadd_ps(scales, _mm512_set1_ps(-128.0 * a.sum), *offset);
            }
        }
        for ((sums, scaled), offset) in sums.iter_mut().zip(scaled).zip(offset).take(acts.len()) {
            // SAFETY: `sums` holds 16 floats.
            unsafe { _mm512_storeu_ps(sums.as_mut_ptr(), _mm512_add_ps(scaled, offset)) };
        }
    }

    /// The 16 rows of 8-bit `tiles` times each row of `acts`, into `sums`, in two halves of
    /// 8 rows. `vpmaddubsw` multiplies unsigned bytes by signed ones, and two products of a
    /// stored value (up to 255) by an activation overflow its 16 bits: the values are made
    /// signed again (−128..127) and take the activations' signs, which leaves the
    /// activations' magnitudes (up to 127) unsigned, two products at most 32,512.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn eight_bit_256(
        tiles: &[Tile8],
        acts: &[&[Activation]],
        sums: &mut [[f32; TILE]; ROWS],
    ) {
        let bias = _mm256_set1_epi8(-128);
        let ones = _mm256_set1_epi16(1);
        let mut scaled = [[_mm256_setzero_ps(); 2]; ROWS];
        for (b, tile) in tiles.iter().enumerate() {
            for half in 0..2 {
                // SAFETY: the loads read inside `tile` (64-byte aligned).
                let (values, scales) = unsafe {
                    let p = tile.values.as_ptr();
                    let mut v = [_mm256_setzero_si256(); 8];
                    for (g, v) in v.iter_mut().enumerate() {
                        let w = _mm256_load_si256(p.add(64 * g + 32 * half).cast());
                        *v = _mm256_xor_si256(w, bias);
                    }
                    (
                        v,
                        _mm256_cvtph_ps(_mm_loadu_si128(tile.scales.as_ptr().add(8 * half).cast())),
                    )
                };
                for (scaled, act) in scaled.iter_mut().zip(acts) {
                    let a = &act[b];
                    let mut dot = _mm256_setzero_si256();
                    for (g, &v) in values.iter().enumerate() {
                        let four = _mm256_set1_epi32(four(&a.values, 4 * g));
                        let pairs =
                            _mm256_maddubs_epi16(_mm256_abs_epi8(four), _mm256_sign_epi8(v, four));
                        dot = _mm256_add_epi32(dot, _mm256_madd_epi16(pairs, ones));
                    }
                    let factor = _mm256_mul_ps(scales, _mm256_set1_ps(a.scale));
                    scaled[half] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), factor, scaled[half]);
                }
            }
        }
        for (sums, scaled) in sums.iter_mut().zip(scaled).take(acts.len()) {
            for (half, scaled) in scaled.into_iter().enumerate() {
                // SAFETY: `sums` holds 16 floats.
                unsafe { _mm256_storeu_ps(sums.as_mut_ptr().add(8 * half), scaled) };
            }
        }
    }

    /// The 16 rows of 4-bit `tiles` times each row of `acts`, into `sums`, in two halves of
    /// 8 rows. Each `vpmaddubsw` lane adds two products of at most 15 × 127, so the eight
    /// of a block (at most 30,480) still fit its 16 bits.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn four_bit_256(
        tiles: &[Tile4],
        acts: &[&[Activation]],
        sums: &mut [[f32; TILE]; ROWS],
    ) {
        let low = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut scaled = [[_mm256_setzero_ps(); 2]; ROWS];
        let mut offset = [[_mm256_setzero_ps(); 2]; ROWS];
        for (b, tile) in tiles.iter().enumerate() {
            for half in 0..2 {
                // SAFETY: the loads read inside `tile` (64-byte aligned).
                let (nibbles, scales, offsets) = unsafe {
                    let p = tile.nibbles.as_ptr();
                    let mut n = [(_mm256_setzero_si256(), _mm256_setzero_si256()); 4];
                    for (g, n) in n.iter_mut().enumerate() {
                        let w = _mm256_load_si256(p.add(64 * g + 32 * half).cast());
                        *n = (
                            _mm256_and_si256(w, low),
                            _mm256_and_si256(_mm256_srli_epi16::<4>(w), low),
                        );
                    }
                    (
                        n,
                        _mm256_cvtph_ps(_mm_loadu_si128(tile.scales.as_ptr().add(8 * half).cast())),
                        _mm256_cvtph_ps(_mm_loadu_si128(
                            tile.offsets.as_ptr().add(8 * half).cast(),
                        )),
                    )
                };
                for ((scaled, offset), act) in scaled.iter_mut().zip(&mut offset).zip(acts) {
                    let a = &act[b];
                    let mut pairs = _mm256_setzero_si256();
                    for (g, &(lo, hi)) in nibbles.iter().enumerate() {
                        let lo_a = _mm256_set1_epi32(four(&a.values, 8 * g));
                        let hi_a = _mm256_set1_epi32(four(&a.values, 8 * g + 4));
                        pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(lo, lo_a));
                        pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(hi, hi_a));
                    }
                    let dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                    let factor = _mm256_mul_ps(scales, _mm256_set1_ps(a.scale));
                    scaled[half] = _mm256_fmadd_ps(dot, factor, scaled[half]);
                    offset[half] = _mm256_fmadd_ps(offsets, _mm256_set1_ps(a.sum), offset[half]);
                }
            }
        }
        for ((sums, scaled), offset) in sums.iter_mut().zip(scaled).zip(offset).take(acts.len()) {
            for half in 0..2 {
                // SAFETY: `sums` holds 16 floats.
                unsafe {
                    _mm256_storeu_ps(
                        sums.as_mut_ptr().add(8 * half),
                        _mm256_add_ps(scaled[half], offset[half]),
                    )
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    /// An `outputs × inputs` matrix of varied weights (rows of different magnitudes),
    /// quantized to `dtype`, and its dequantized values.
    fn matrix(outputs: usize, inputs: usize, dtype: GgmlDType) -> (Vec<f32>, QTensor) {
        let weights: Vec<f32> = (0..outputs * inputs)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i / inputs % 5) as f32))
            .collect();
        let tensor = Tensor::from_slice(&weights, (outputs, inputs), &Device::Cpu).expect("w");
        let q = QTensor::quantize(&tensor, dtype).expect("quantize");
        let dequantized = q
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all()?.to_vec1())
            .expect("dequantize");
        (dequantized, q)
    }

    /// The kernels this CPU has, best first.
    fn kernels() -> &'static [Kernel] {
        match Kernel::detect() {
            Some(Kernel::Amx) => &[Kernel::Amx, Kernel::Avx512Vnni, Kernel::Avx2],
            Some(Kernel::Avx512Vnni) => &[Kernel::Avx512Vnni, Kernel::Avx2],
            Some(Kernel::Avx2) => &[Kernel::Avx2],
            None => &[],
        }
    }

    /// The tiles compute, on every kernel this CPU has, the product of the dequantized
    /// matrix to within the activations' 8-bit rounding, for one row and for several (a pass
    /// of four and a remainder; for AMX two passes of 16 and a remainder), with a last tile
    /// of rows only partly filled.
    #[test]
    fn tiles_multiply_like_the_dequantized_matrix() {
        let (outputs, inputs) = (40, 96);
        for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let (weights, q) = matrix(outputs, inputs, dtype);
            for &kernel in kernels() {
                let tiles = Tiles::pack_for(&q, kernel)
                    .expect("pack")
                    .expect("a kernel for every block type");
                assert_eq!(tiles.inputs(), inputs);
                for rows in [1, 6, 37] {
                    let x: Vec<f32> = (0..rows * inputs)
                        .map(|i| (i * 104_729 % 1000) as f32 / 500.0 - 1.0)
                        .collect();
                    let product = tiles.multiply(&x, rows).expect("multiply");
                    assert_eq!(product.len(), rows * outputs);
                    for (row, x) in x.chunks_exact(inputs).enumerate() {
                        for (column, w) in weights.chunks_exact(inputs).enumerate() {
                            let exact: f32 = w.iter().zip(x).map(|(a, b)| a * b).sum();
                            let scale: f32 = w.iter().zip(x).map(|(a, b)| (a * b).abs()).sum();
                            let got = product[row * outputs + column];
                            assert!(
                                (got - exact).abs() <= 0.01 * scale,
                                "{dtype:?} {kernel:?}, row {row} column {column}: {got} vs {exact}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The offsets are applied (Q4_0's −8, Q4_1's stored minimum, Q8_0's −128 of the
    /// stored values): a matrix of constant rows multiplies to the row's value times the
    /// activations' sum.
    #[test]
    fn offsets_are_applied() {
        let inputs = 64;
        let constants = [-3.0f32, 0.5, 2.0];
        let rows: Vec<f32> = constants
            .iter()
            .flat_map(|&v| std::iter::repeat_n(v, inputs))
            .collect();
        let tensor = Tensor::from_slice(&rows, (3, inputs), &Device::Cpu).expect("w");
        for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let q = QTensor::quantize(&tensor, dtype).expect("quantize");
            for &kernel in kernels() {
                let Some(tiles) = Tiles::pack_for(&q, kernel).expect("pack") else {
                    continue;
                };
                let product = tiles.multiply(&[1.0; 64], 1).expect("multiply");
                for (got, constant) in product.iter().zip(constants) {
                    let want = constant * inputs as f32;
                    assert!(
                        (got - want).abs() <= 0.01 * want.abs(),
                        "{dtype:?} {kernel:?}: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// The SIMD quantization gives the scalar one's values, scale and sum.
    #[test]
    fn activations_quantize_like_the_scalar_code() {
        let blocks: Vec<f32> = (0..32 * 50)
            .map(|i| match i / 32 {
                0 => 0.0,
                1 => 1.0,
                2 => (i % 32) as f32 - 16.0,
                b => ((i * 104_729 % 1000) as f32 / 500.0 - 1.0) * b as f32,
            })
            .collect();
        for x in blocks.chunks_exact(BLOCK) {
            let (got, want) = (quantize_block(x), quantize(x));
            assert_eq!(got.values, want.values, "{x:?}");
            assert_eq!(got.scale, want.scale);
            assert_eq!(got.sum, want.sum);
        }
    }

    /// Every chunk is visited once, with its index, the last one shorter.
    #[test]
    fn every_chunk_is_visited_once() {
        let mut out = vec![0f32; 1003];
        for_each_chunk(&mut out, 10, |index, chunk| {
            assert_eq!(chunk.len(), if index == 100 { 3 } else { 10 });
            for v in chunk {
                *v += index as f32 + 1.0;
            }
        });
        for (i, v) in out.iter().enumerate() {
            assert_eq!(*v, (i / 10) as f32 + 1.0);
        }
        let mut one = [0f32; 4];
        for_each_chunk(&mut one, 8, |index, chunk| chunk.fill(index as f32 + 2.0));
        assert_eq!(one, [2.0; 4]);
    }

    /// Other types are left to candle; a wrong input length is an error, not a panic.
    #[test]
    fn other_types_and_wrong_lengths() {
        let (_, q4k) = matrix(16, 256, GgmlDType::Q4K);
        assert!(Tiles::pack(&q4k).expect("pack").is_none());
        let (_, q4) = matrix(16, 64, GgmlDType::Q4_1);
        if let Some(tiles) = Tiles::pack(&q4).expect("pack") {
            assert!(tiles.multiply(&[0.0; 63], 1).is_err());
            assert!(tiles.multiply(&[0.0; 64], 2).is_err());
        }
    }
}
