//! The `pack` pass: the smallest data section that gives the same memory.
//!
//! # Algorithm
//!
//! 1. **Image.** Active segments are split into an *exact prefix* and a
//!    *suffix*. The prefix is the longest run of active segments (in index
//!    order) whose offsets are known (a constant, or a defined constant
//!    global) and that are provably in bounds (`offset + len` at most the
//!    memory's declared minimum, which for an imported memory is a lower
//!    bound of its real size). None of them can trap, so their order against
//!    each other only matters where they overlap: per memory, the pass paints
//!    them in order (later segments overwrite earlier ones) into clusters of
//!    overlapping segments, borrowing the payload when a cluster is a single
//!    segment.
//! 2. **Runs.** Each image becomes a list of *must-write runs*: in a
//!    zero-filled memory (every memory the module defines, and imported ones
//!    under `zero_filled_imports`) the maximal runs of non-zero bytes, found
//!    with word-at-a-time scanning and `memchr`, in parallel blocks with rayon
//!    for large images (the result does not depend on the thread count); in an
//!    imported memory, every written byte, since its other bytes are unknown.
//!    Between two runs a gap is *bridgeable* (written as zeros inside a
//!    segment) only when the memory is zero-filled there.
//! 3. **Optimum.** A dynamic program over the runs picks where segments start
//!    and end. A segment from run `i` to run `j` costs its exact encoding:
//!    the flags byte (and the memory index LEB for memories other than 0),
//!    the offset expression (`i32.const`/`i64.const` with its signed LEB, or
//!    `global.get g; i32.const k; i32.add`), the `end` byte, the length LEB
//!    and the bytes, bridged gaps included. The length LEB takes at most five
//!    values, so for each value the candidate starts form a sliding window
//!    and a monotone queue gives the minimum: O(5 n) for `n` runs. Gaps of at
//!    most 4 bytes are bridged up front: splitting there costs a header of at
//!    least 4 bytes and never shortens the length LEBs by more than it saves,
//!    so some optimum bridges them. The section's own LEBs (segment count,
//!    and the data count section's) depend on the total count: the pass
//!    solves once per LEB width of the count (count <= 127, <= 16383, ...)
//!    and keeps the cheapest.
//! 4. **Segment cap.** When the optimum has more than `max_segments`
//!    segments, a per-segment penalty `lambda` (Lagrangian relaxation) is
//!    raised by binary search until the count fits. The result is optimal
//!    among all solutions with at most its own count; when that count is
//!    below the cap, the report gives the gap to the dual lower bound
//!    ([`PackReport::cap_gap_bytes`]), 0 meaning proven optimal.
//!
//! # Exactness
//!
//! * Prefix pieces are disjoint, so their order is free; the suffix is
//!   emitted after them, in its order, so every overwrite and every trap of
//!   the suffix happens as before, with the same writes already done.
//! * The suffix is kept byte for byte (its segments may trap, or have
//!   offsets that are not known until instantiation), except for a *global
//!   group*: when every suffix segment is in one memory, at `global.get g`
//!   (plus a non-negative constant) of one imported global `g`, and no other
//!   segment writes that memory (an Emscripten side module), the group is
//!   packed in `g`-relative addresses under `extended_const`, with pieces at
//!   `global.get g; i32.const k; i32.add`. Without the flag the group is
//!   kept and the report says how many bytes the flag would save.
//!   Trap preservation for a group: segments are cut into chunks at each new
//!   maximum of `k + len` (for a defined memory, a single chunk), and each
//!   chunk starts with its piece that ends at the chunk's maximum (or a
//!   zero-length guard segment there), so the output traps exactly when the
//!   input does and before writing the same chunk. Bytes an earlier chunk
//!   wrote are never dropped or bridged by a later one. This assumes
//!   `g + k` does not wrap around the address space, i.e. that the base plus
//!   the group's extent stays below 2^32 (2^64); such a base could never
//!   place the group in memory.
//! * Passive segments: a passive segment whose every `memory.init` has
//!   constant source offset and length (two `i32.const`s directly before)
//!   is split into pieces at zero runs where that pays, counting the data
//!   bytes and the code growth of the rewritten `memory.init` and `data.drop`
//!   sites; a passive segment code never reads is dropped. Each `memory.init`
//!   becomes a sequence that traps exactly when the original does, writes
//!   nothing before trapping and then writes the same bytes; `data.drop`
//!   drops every piece. The algorithm and its exactness argument are in
//!   [`crate::pack_passive`]. Other passive segments, and every segment a
//!   GC `array.new_data` or `array.init_data` reads, are kept byte for byte.
//! * Segment indices used by code (`memory.init`, `data.drop`,
//!   `array.new_data`, `array.init_data`) keep their
//!   meaning. When no passive segment is split and no active segment is kept
//!   as is (no suffix), the code section is copied byte for byte: without
//!   such uses, passive segments are placed after the active ones; with them,
//!   every index up to the largest one used keeps its kind (a passive segment
//!   stays at its index; an active one is replaced by a packed piece or, when
//!   pieces run out, an empty segment at offset 0, which is in bounds and
//!   writes nothing). Otherwise the output is active pieces, the suffix, then
//!   the passive segments and pieces in input order, and code is renumbered:
//!   a kept passive segment to its new index, an active one (dropped at
//!   instantiation, so only `memory.init` with length and offset 0 succeeds
//!   on it) to the first active segment of the output (an empty one at offset
//!   0 is added when there is none). Only the function bodies whose data
//!   indices change are re-encoded; the others are copied byte for byte. The
//!   data count section follows the new count.
//! * Names of data segments follow the new indices; a piece takes the name
//!   of the segment that wrote its first byte, for the first such piece only.
//! * When the packed data section (plus data count section, plus the code
//!   section when code was rewritten) is not smaller than the input's and
//!   the input respects the cap, the output is the input.
//!
//! Every other section is copied byte for byte; the output is validated.

use crate::error::{Error, Result};
use crate::model::{ModuleInfo, Offset};
use crate::rewrite::Rewrite;
use crate::sections::ids;
use rayon::prelude::*;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use wasm_encoder::ConstExpr;

/// Default segment cap: the number of data segments Web engines accept.
pub const DEFAULT_MAX_SEGMENTS: u32 = 100_000;

/// Options of the pass.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// Upper bound on the number of data segments in the output.
    pub max_segments: u32,
    /// Split segments at `global.get` offsets using extended-const offsets.
    pub extended_const: bool,
    /// Treat imported memories as zero-filled at instantiation.
    pub zero_filled_imports: bool,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            max_segments: DEFAULT_MAX_SEGMENTS,
            extended_const: false,
            zero_filled_imports: false,
        }
    }
}

/// Before/after figures for one memory.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MemoryReport {
    /// Memory index.
    pub memory: u32,
    /// `true` for an imported memory.
    pub imported: bool,
    /// `true` when the pass could drop zero bytes (defined memory, or
    /// imported with `zero_filled_imports`).
    pub zero_filled: bool,
    /// Active segments before.
    pub segments_before: u64,
    /// Active segments after.
    pub segments_after: u64,
    /// Encoded bytes of those segments before (headers and payload).
    pub bytes_before: u64,
    /// Encoded bytes after.
    pub bytes_after: u64,
}

/// What the pass did.
#[derive(Debug, Clone, Serialize)]
pub struct PackReport {
    /// Size of the data section (header included) before.
    pub data_section_before: u64,
    /// Size after.
    pub data_section_after: u64,
    /// All data segments before.
    pub segments_before: u64,
    /// All data segments after.
    pub segments_after: u64,
    /// Passive segments before.
    pub passive_segments: u64,
    /// Passive segments after (pieces of split segments included).
    pub passive_segments_after: u64,
    /// Encoded bytes of the passive segments before (headers and payload).
    pub passive_bytes_before: u64,
    /// Encoded bytes of the passive segments after.
    pub passive_bytes_after: u64,
    /// Passive segments split into pieces (or dropped: never read).
    pub passive_segments_split: u64,
    /// `memory.init` sites rewritten into `memory.init`/`memory.fill`
    /// sequences.
    pub memory_init_rewritten: u64,
    /// `data.drop` sites rewritten into drops of every piece.
    pub data_drop_rewritten: u64,
    /// Size of the code section (header included) before; after: see
    /// `code_section_after` (equal when code is copied byte for byte).
    pub code_section_before: u64,
    /// Size of the code section after.
    pub code_section_after: u64,
    /// Active segments kept byte for byte (see `notes`).
    pub kept_segments: u64,
    /// Per memory.
    pub memories: Vec<MemoryReport>,
    /// Bytes `--extended-const` would save (segments at `global.get` offsets
    /// kept whole because the flag is off).
    pub extended_const_would_save: Option<u64>,
    /// Distance to the proven lower bound when the segment cap forced a
    /// compromise (0: optimal); `None` when the cap did not bind.
    pub cap_gap_bytes: Option<u64>,
    /// `false` when the output is the input byte for byte.
    pub changed: bool,
    /// Why some segments were kept as they are.
    pub notes: Vec<String>,
}

/// Length of the unsigned LEB128 encoding of `v`.
pub fn uleb_len(v: u64) -> u64 {
    (64 - (v | 1).leading_zeros() as u64).div_ceil(7)
}

/// Length of the signed LEB128 encoding of `v`.
pub fn sleb_len(v: i64) -> u64 {
    // Bits needed including the sign bit.
    let bits = if v < 0 {
        65 - v.leading_ones() as u64
    } else {
        65 - v.leading_zeros() as u64
    };
    bits.div_ceil(7).max(1)
}

/// How the offset of an emitted piece is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    /// `i32.const a` / `i64.const a`.
    Const,
    /// `global.get g` (+ `i32.const k; i32.add`).
    Global(u32),
}

/// The encoding of segment headers in one address space of one memory.
#[derive(Debug, Clone, Copy)]
struct Header {
    memory: u32,
    memory64: bool,
    base: Base,
}

impl Header {
    /// Bytes of a segment at `start` apart from the length LEB and payload:
    /// flags (+ memory index), offset expression, `end`.
    fn cost(&self, start: u64) -> u64 {
        let flags = if self.memory == 0 {
            1
        } else {
            1 + uleb_len(self.memory as u64)
        };
        let value = self.const_value(start);
        let expr = match self.base {
            Base::Const => 1 + sleb_len(value),
            Base::Global(g) if start == 0 => 1 + uleb_len(g as u64),
            Base::Global(g) => 1 + uleb_len(g as u64) + 1 + sleb_len(value) + 1,
        };
        flags + expr + 1
    }

    fn const_value(&self, start: u64) -> i64 {
        if self.memory64 {
            start as i64
        } else {
            start as u32 as i32 as i64
        }
    }

    fn expr(&self, start: u64) -> ConstExpr {
        let value = self.const_value(start);
        match (self.base, self.memory64) {
            (Base::Const, false) => ConstExpr::i32_const(value as i32),
            (Base::Const, true) => ConstExpr::i64_const(value),
            (Base::Global(g), _) if start == 0 => ConstExpr::global_get(g),
            (Base::Global(g), false) => ConstExpr::global_get(g)
                .with_i32_const(value as i32)
                .with_i32_add(),
            (Base::Global(g), true) => ConstExpr::global_get(g)
                .with_i64_const(value)
                .with_i64_add(),
        }
    }

    /// Full encoded size of a segment `[start, start + len)`.
    fn segment_cost(&self, start: u64, len: u64) -> u64 {
        self.cost(start) + uleb_len(len) + len
    }
}

/// A maximal group of overlapping segments, painted in order.
#[derive(Debug)]
struct Cluster<'a> {
    start: u64,
    data: Cow<'a, [u8]>,
    /// Segment that wrote each byte (one entry for a single segment).
    owners: Vec<u32>,
}

impl Cluster<'_> {
    fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }

    fn owner(&self, at: u64) -> u32 {
        if self.owners.len() == 1 {
            self.owners[0]
        } else {
            self.owners[(at - self.start) as usize]
        }
    }
}

/// One input segment placed in an address space: `(start, index, payload)`.
type Placed<'a> = (u64, u32, &'a [u8]);

/// Paint segments (in index order) into sorted, disjoint clusters.
fn paint<'a>(segments: &[Placed<'a>]) -> Vec<Cluster<'a>> {
    let mut order: Vec<usize> = (0..segments.len())
        .filter(|&i| !segments[i].2.is_empty())
        .collect();
    order.sort_by_key(|&i| (segments[i].0, i));
    let mut clusters = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let first = segments[order[i]];
        let mut end = first.0 + first.2.len() as u64;
        let mut j = i + 1;
        while j < order.len() && segments[order[j]].0 < end {
            end = end.max(segments[order[j]].0 + segments[order[j]].2.len() as u64);
            j += 1;
        }
        if j == i + 1 {
            clusters.push(Cluster {
                start: first.0,
                data: Cow::Borrowed(first.2),
                owners: vec![first.1],
            });
        } else {
            let start = first.0;
            let mut members: Vec<usize> = order[i..j].to_vec();
            members.sort_unstable(); // index order = application order
            let mut data = vec![0u8; (end - start) as usize];
            let mut owners = vec![0u32; data.len()];
            for m in members {
                let (s, index, bytes) = segments[m];
                let at = (s - start) as usize;
                data[at..at + bytes.len()].copy_from_slice(bytes);
                owners[at..at + bytes.len()].fill(index);
            }
            clusters.push(Cluster {
                start,
                data: Cow::Owned(data),
                owners,
            });
        }
        i = j;
    }
    clusters
}

/// Append `[s, e)` to the sorted runs `out`, merging it into the last run
/// when the zero gap between them is at most `merge_gap` bytes (0: only
/// touching runs merge).
fn push_run(out: &mut Vec<(u64, u64)>, s: u64, e: u64, merge_gap: u64) {
    match out.last_mut() {
        Some(last) if s - last.1 <= merge_gap => last.1 = e,
        _ => out.push((s, e)),
    }
}

/// Append the maximal non-zero runs of `data` (at address `base`) to `out`,
/// merging runs separated by at most `merge_gap` zero bytes (see
/// [`push_run`]), including with the last run already in `out`.
fn nonzero_runs(data: &[u8], base: u64, out: &mut Vec<(u64, u64)>, merge_gap: u64) {
    let mut pos = 0;
    while pos < data.len() {
        // Skip zeros a word at a time.
        let rest = &data[pos..];
        let mut skip = 0;
        for chunk in rest.chunks_exact(16) {
            if u128::from_ne_bytes(chunk.try_into().unwrap()) != 0 {
                break;
            }
            skip += 16;
        }
        match rest[skip..].iter().position(|b| *b != 0) {
            Some(p) => pos += skip + p,
            None => return,
        }
        let end = memchr::memchr(0, &data[pos..]).map_or(data.len(), |p| pos + p);
        push_run(out, base + pos as u64, base + end as u64, merge_gap);
        pos = end;
    }
}

/// Non-zero runs of a large slice, scanned in parallel blocks.
/// The merging is a left fold over the runs in address order, so blocks
/// scanned apart and joined give the same runs as one scan.
fn nonzero_runs_parallel(data: &[u8], base: u64, out: &mut Vec<(u64, u64)>, merge_gap: u64) {
    const BLOCK: usize = 1 << 18;
    if data.len() <= BLOCK {
        nonzero_runs(data, base, out, merge_gap);
        return;
    }
    let blocks: Vec<Vec<(u64, u64)>> = data
        .par_chunks(BLOCK)
        .enumerate()
        .map(|(i, block)| {
            let mut runs = Vec::new();
            nonzero_runs(block, base + (i * BLOCK) as u64, &mut runs, merge_gap);
            runs
        })
        .collect();
    out.reserve(blocks.iter().map(Vec::len).sum());
    for runs in blocks {
        for (s, e) in runs {
            push_run(out, s, e, merge_gap);
        }
    }
}

/// Zero gaps of at most this many bytes are always bridged: splitting there
/// costs a segment header of at least 4 bytes and never shortens the length
/// LEBs by more than it saves (see the module docs).
const SMALL_GAP: u64 = 4;

/// One independent optimisation problem: must-write runs in one address
/// space, and the bytes to fill pieces with.
struct Domain<'a> {
    header: Header,
    clusters: Vec<Cluster<'a>>,
    /// Sorted, disjoint, non-touching must-write runs `[start, end)`.
    runs: Vec<(u64, u64)>,
    /// `bridge[i]`: the gap between runs `i` and `i + 1` may be written.
    bridge: Vec<bool>,
    /// For a guarded chunk: the chunk's maximal end; a zero-length guard
    /// segment is needed when no run ends there.
    guard_at: Option<u64>,
}

/// Sorted disjoint intervals.
type Intervals = Vec<(u64, u64)>;

fn intersects(set: &Intervals, s: u64, e: u64) -> bool {
    let i = set.partition_point(|iv| iv.1 <= s);
    i < set.len() && set[i].0 < e
}

/// Union of two sorted interval lists, merging touching intervals.
fn union(a: &Intervals, b: &Intervals) -> Intervals {
    let mut all: Vec<(u64, u64)> = a.iter().chain(b).copied().collect();
    all.sort_unstable();
    let mut out: Intervals = Vec::with_capacity(all.len());
    for (s, e) in all {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

impl<'a> Domain<'a> {
    /// Build a domain from segments in order. `prior`: bytes written by
    /// earlier chunks (they must be rewritten exactly, never bridged).
    fn new(header: Header, segments: &[Placed<'a>], zero_filled: bool, prior: &Intervals) -> Self {
        let clusters = paint(segments);
        let mut runs: Vec<(u64, u64)> = Vec::new();
        if zero_filled {
            // With no bytes forced by earlier chunks every gap is bridgeable,
            // so the scan itself can bridge the gaps `merge_small_gaps`
            // would: the same runs, without materialising the many short
            // runs of dense tables (tens of thousands on real modules).
            let merge_gap = if prior.is_empty() { SMALL_GAP } else { 0 };
            let per_cluster: Vec<Vec<(u64, u64)>> = clusters
                .par_iter()
                .map(|c| {
                    let mut r = Vec::new();
                    nonzero_runs_parallel(&c.data, c.start, &mut r, merge_gap);
                    r
                })
                .collect();
            runs.reserve(per_cluster.iter().map(Vec::len).sum());
            for r in per_cluster {
                for (s, e) in r {
                    push_run(&mut runs, s, e, merge_gap);
                }
            }
            if !prior.is_empty() {
                // Covered bytes an earlier chunk wrote must be written again.
                let mut forced = Vec::new();
                for c in &clusters {
                    let i = prior.partition_point(|iv| iv.1 <= c.start);
                    for &(s, e) in &prior[i..] {
                        if s >= c.end() {
                            break;
                        }
                        forced.push((s.max(c.start), e.min(c.end())));
                    }
                }
                runs = union(&runs, &forced);
            }
        } else {
            for c in &clusters {
                match runs.last_mut() {
                    Some(last) if last.1 == c.start => last.1 = c.end(),
                    _ => runs.push((c.start, c.end())),
                }
            }
        }
        let bridge = runs
            .windows(2)
            .map(|w| zero_filled && !intersects(prior, w[0].1, w[1].0))
            .collect();
        let mut domain = Domain {
            header,
            clusters,
            runs,
            bridge,
            guard_at: None,
        };
        domain.merge_small_gaps();
        domain
    }

    /// Bridge gaps of at most 4 bytes: some optimum always does (see the
    /// module docs), and it shrinks the dynamic program.
    fn merge_small_gaps(&mut self) {
        if self.runs.len() < 2 {
            return;
        }
        let mut runs = Vec::with_capacity(self.runs.len());
        let mut bridge = Vec::with_capacity(self.bridge.len());
        runs.push(self.runs[0]);
        for i in 1..self.runs.len() {
            let (s, e) = self.runs[i];
            let last = runs.last_mut().unwrap();
            if self.bridge[i - 1] && s - last.1 <= SMALL_GAP {
                last.1 = e;
            } else {
                bridge.push(self.bridge[i - 1]);
                runs.push((s, e));
            }
        }
        self.runs = runs;
        self.bridge = bridge;
    }

    /// Bytes of `[start, end)`: painted bytes, zeros elsewhere. Borrowed
    /// from the input when one segment of the input holds them all.
    fn bytes(&self, start: u64, end: u64) -> Cow<'a, [u8]> {
        let i = self.clusters.partition_point(|c| c.end() <= start);
        if let Some(c) = self.clusters.get(i) {
            if c.start <= start && end <= c.end() {
                let range = (start - c.start) as usize..(end - c.start) as usize;
                return match &c.data {
                    Cow::Borrowed(input) => Cow::Borrowed(&input[range]),
                    Cow::Owned(painted) => Cow::Owned(painted[range].to_vec()),
                };
            }
        }
        let mut out = vec![0u8; (end - start) as usize];
        for c in &self.clusters[i..] {
            if c.start >= end {
                break;
            }
            let s = c.start.max(start);
            let e = c.end().min(end);
            out[(s - start) as usize..(e - start) as usize]
                .copy_from_slice(&c.data[(s - c.start) as usize..(e - c.start) as usize]);
        }
        Cow::Owned(out)
    }

    /// The segment that wrote the byte at `at`, if any.
    fn owner(&self, at: u64) -> Option<u32> {
        let i = self.clusters.partition_point(|c| c.end() <= at);
        self.clusters
            .get(i)
            .filter(|c| c.start <= at)
            .map(|c| c.owner(at))
    }

    /// Decide every bridgeable gap, in address order: split where `split`
    /// yields `true` (the gap becomes unbridgeable), else bridged (its two
    /// runs become one, so no optimum can end a segment there).
    fn fix_gaps(&mut self, split: &mut impl Iterator<Item = bool>) {
        if self.runs.is_empty() {
            return;
        }
        let tail = self.tail_gap();
        let mut runs = Vec::with_capacity(self.runs.len());
        let mut bridge = Vec::with_capacity(self.bridge.len());
        runs.push(self.runs[0]);
        for i in 1..self.runs.len() {
            let (s, e) = self.runs[i];
            if self.bridge[i - 1] && !split.next().unwrap_or(false) {
                runs.last_mut().unwrap().1 = e;
            } else {
                bridge.push(false);
                runs.push((s, e));
            }
        }
        if let Some((start, len)) = tail {
            if !split.next().unwrap_or(true) {
                runs.last_mut().unwrap().1 = start + len;
            }
        }
        self.runs = runs;
        self.bridge = bridge;
    }

    /// The tail gap of a guarded chunk (see [`Gaps`]): `(start, length)` of
    /// the zeros between its last must-write run and its maximal end. Those
    /// bytes lie in the chunk's last cluster (which ends at the maximum), are
    /// zero there, and no earlier chunk wrote them (such bytes are
    /// must-write runs), so there is a tail only in a zero-filled memory.
    fn tail_gap(&self) -> Option<(u64, u64)> {
        let max = self.guard_at?;
        let last = self.runs.last()?.1;
        let cluster_end = self.clusters.last()?.end();
        (last < max && cluster_end == max).then(|| (last, max - last))
    }

    /// Cost of keeping one piece per run of this domain's input (no guard).
    fn guard_cost(&self) -> u64 {
        match self.guard_at {
            Some(at) if self.runs.last().is_none_or(|r| r.1 != at) => {
                self.header.segment_cost(at, 0)
            }
            _ => 0,
        }
    }

    fn guard_count(&self) -> u64 {
        u64::from(self.guard_cost() > 0)
    }

    /// Largest bridgeable gap (bounds the useful penalty).
    fn max_gap(&self) -> u64 {
        self.runs
            .windows(2)
            .zip(&self.bridge)
            .filter(|(_, b)| **b)
            .map(|(w, _)| w[1].0 - w[0].1)
            .max()
            .unwrap_or(0)
    }
}

/// A solution of one domain: pieces as run-index ranges.
#[derive(Debug, Clone, Default)]
struct Solution {
    /// `(start, end)` addresses of each piece.
    pieces: Vec<(u64, u64)>,
    /// Encoded bytes of the pieces.
    cost: u64,
}

/// Minimise `cost + lambda * count` over the partitions of the runs of
/// `domain` into segments (ties: fewer segments). O(5 n).
fn solve(domain: &Domain<'_>, lambda: u64) -> Solution {
    let runs = &domain.runs;
    let n = runs.len();
    if n == 0 {
        return Solution::default();
    }
    // f[j] = best (penalised cost, count) covering runs 0..=j.
    let mut best: Vec<(i128, u64)> = Vec::with_capacity(n);
    let mut choice: Vec<usize> = Vec::with_capacity(n);
    // One monotone queue per length-LEB width b = 1..=5: entries (key, count, i).
    let mut queues: [VecDeque<(i128, u64, usize)>; 5] = Default::default();
    let limit = |b: usize| -> u64 {
        if b == 5 {
            1 << 32
        } else {
            1 << (7 * b)
        }
    };
    for j in 0..n {
        if j > 0 && !domain.bridge[j - 1] {
            for q in &mut queues {
                q.clear();
            }
        }
        // Candidate start i = j.
        let (prev, prev_count) = if j == 0 { (0, 0) } else { best[j - 1] };
        let start = runs[j].0;
        let key = prev + domain.header.cost(start) as i128 - start as i128 + lambda as i128;
        let count = prev_count + 1;
        for q in &mut queues {
            while q.back().is_some_and(|&(k, c, _)| (k, c) >= (key, count)) {
                q.pop_back();
            }
            q.push_back((key, count, j));
        }
        let end = runs[j].1;
        let mut candidate: Option<(i128, u64, usize)> = None;
        for (b, q) in queues.iter_mut().enumerate() {
            while q
                .front()
                .is_some_and(|&(_, _, i)| end - runs[i].0 >= limit(b + 1))
            {
                q.pop_front();
            }
            if let Some(&(k, c, i)) = q.front() {
                let value = k + (b + 1) as i128 + end as i128;
                if candidate.is_none_or(|(v, cc, _)| (value, c) < (v, cc)) {
                    candidate = Some((value, c, i));
                }
            }
        }
        let (value, c, i) = candidate.expect("a run always fits a segment");
        best.push((value, c));
        choice.push(i);
    }
    let mut pieces = Vec::new();
    let mut j = n;
    while j > 0 {
        let i = choice[j - 1];
        pieces.push((runs[i].0, runs[j - 1].1));
        j = i;
    }
    pieces.reverse();
    let cost = pieces
        .iter()
        .map(|&(s, e)| domain.header.segment_cost(s, e - s))
        .sum();
    Solution { pieces, cost }
}

/// Solve every domain with one penalty.
fn solve_all(domains: &[Domain<'_>], lambda: u64) -> (Vec<Solution>, u64, u64) {
    let solutions: Vec<Solution> = domains.par_iter().map(|d| solve(d, lambda)).collect();
    let cost = solutions.iter().map(|s| s.cost).sum();
    let count = solutions.iter().map(|s| s.pieces.len() as u64).sum();
    (solutions, cost, count)
}

/// The best solution with at most `cap` pieces: `None` when impossible, or
/// when some probe proves that every such solution encodes to more than
/// `give_up_above` bytes (the Lagrangian bound below, checked at each probe
/// whose count is over the cap). `first`: [`solve_all`] at `penalty`.
/// Also returns the gap to the Lagrangian lower bound when the cap binds.
fn solve_capped(
    domains: &[Domain<'_>],
    cap: u64,
    penalty: u64,
    first: &(Vec<Solution>, u64, u64),
    give_up_above: Option<u64>,
) -> Option<(Vec<Solution>, u64, u64, Option<u64>)> {
    let &(ref s0, c0, n0) = first;
    if n0 <= cap {
        return Some((s0.clone(), c0, n0, None));
    }
    // A solution with at most `cap` pieces costs at least
    // cost(l) + l * (count(l) - cap) for any penalty l whose optimum has
    // count(l) > cap (weak duality: it is no better than that optimum at l).
    let hopeless = |cost: u64, count: u64, l: u64| {
        give_up_above.is_some_and(|limit| cost + l * (count - cap) > limit)
    };
    if hopeless(c0, n0, penalty) {
        return None;
    }
    let mut hi = (domains.iter().map(Domain::max_gap).max().unwrap_or(0) + 64).max(penalty + 1);
    let mut lo = penalty; // count(lo) > cap
    let mut below = (c0, n0);
    let mut best = None;
    // One probe decides most hopeless bands at once: at penalty
    // `limit - c0 + 1`, a count still over the cap makes the bound at least
    // c0 + penalty > limit (costs only grow with the penalty). A count
    // within the cap is a tighter upper end for the search instead. (The
    // search finds the same least penalty whose count fits either way.)
    if let Some(limit) = give_up_above {
        let probe = (limit.saturating_sub(c0) + 1).max(penalty + 1);
        if probe < hi {
            let (s, c, n) = solve_all(domains, probe);
            if n > cap {
                if hopeless(c, n, probe) {
                    return None;
                }
                (lo, below) = (probe, (c, n));
            } else {
                (hi, best) = (probe, Some((s, c, n)));
            }
        }
    }
    let mut best = match best {
        Some(best) => best,
        None => {
            let (s_hi, c_hi, n_hi) = solve_all(domains, hi);
            if n_hi > cap {
                return None;
            }
            (s_hi, c_hi, n_hi)
        }
    };
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let (s, c, n) = solve_all(domains, mid);
        if n <= cap {
            hi = mid;
            best = (s, c, n);
        } else {
            if hopeless(c, n, mid) {
                return None;
            }
            lo = mid;
            below = (c, n);
        }
    }
    // Dual bound with penalty lo: any solution with <= cap pieces costs at
    // least cost(lo) + lo * (count(lo) - cap).
    let bound = below.0 + lo * (below.1 - cap);
    let gap = best.1.saturating_sub(bound);
    Some((best.0, best.1, best.2, Some(gap)))
}

/// The best solution over the widths of the count LEB (step 3 of the
/// module docs): per band of counts (up to 127, 16,383, ...), the optimum
/// with at most the band's (and the cap's) count, scored with its count
/// LEBs (`lebs_per_count` of them) and `penalty` per segment; the cheapest
/// wins, ties going to the narrower band. `fixed`: segments outside the
/// domains. Returns (solutions, total, gap to the dual bound), `None` when
/// no band meets the cap. With `prune`, a band is given up as soon as its
/// Lagrangian bound shows it cannot tie the best total known (the same
/// result, fewer solves: `pruning_bands_gives_the_same_choice`).
fn choose_band(
    domains: &[Domain<'_>],
    fixed: u64,
    cap: u64,
    lebs_per_count: u64,
    penalty: u64,
    prune: bool,
) -> Option<(Vec<Solution>, u64, Option<u64>)> {
    let first = solve_all(domains, penalty);
    // The optimum without a band of its own, when it fits the cap: a band
    // narrower than its count can only win by the bytes of its shorter
    // count LEBs, so a band whose bound already exceeds this total is
    // given up early (ties still go to the narrower band, as below).
    let fitting_total = (first.2 + fixed <= cap)
        .then(|| first.1 + uleb_len(first.2 + fixed) * lebs_per_count + penalty * first.2);
    let mut chosen: Option<(Vec<Solution>, u64, Option<u64>)> = None;
    for band in [127u64, 16_383, 2_097_151, 268_435_455, u32::MAX as u64] {
        let limit = cap.min(band);
        if limit < fixed {
            continue;
        }
        // Every total is at least cost + one byte per count LEB.
        let beat = chosen
            .as_ref()
            .map(|c| c.1)
            .into_iter()
            .chain(fitting_total)
            .min();
        let give_up_above = beat
            .filter(|_| prune)
            .map(|t| t.saturating_sub(lebs_per_count));
        let Some((solutions, cost, count, gap)) =
            solve_capped(domains, limit - fixed, penalty, &first, give_up_above)
        else {
            continue;
        };
        let total = cost + uleb_len(count + fixed) * lebs_per_count + penalty * count;
        if chosen.as_ref().is_none_or(|c| total < c.1) {
            chosen = Some((solutions, total, gap));
        }
        if gap.is_none() {
            break; // the unconstrained optimum fits: wider bands only cost more
        }
    }
    chosen
}

/// One segment of the output.
enum Out {
    /// Input segment copied byte for byte.
    Verbatim(u32),
    /// Piece `index` of domain `domain`.
    Piece { domain: usize, start: u64, end: u64 },
    /// Zero-length segment at `at` of a domain (trap guard).
    Guard { domain: usize, at: u64 },
    /// Zero-length segment at offset 0 of memory `memory` (keeps an index).
    Filler { memory: u32, memory64: bool },
    /// `[start, end)` of passive segment `segment`, as a passive segment.
    PassivePiece { segment: u32, start: u64, end: u64 },
}

/// Pack the data section of `input` (a valid module; `info` its model).
pub fn pack(
    input: &[u8],
    info: &ModuleInfo,
    options: &PackOptions,
) -> Result<(Vec<u8>, PackReport)> {
    pack_impl(input, info, options, 0, true, None).map(|(out, report, _)| (out, report))
}

/// Hook for [`crate::pack_objective`]: pack with `penalty` added to the cost
/// of every segment in the dynamic program (0 gives the raw optimum, a
/// penalty above every bridgeable gap one segment per bridgeable region;
/// the cap is met as in [`pack`]), and keep the result even when its data
/// section is larger than the input's. Same exactness guarantees as
/// [`pack`]; the output is validated.
pub fn pack_with_penalty(
    input: &[u8],
    info: &ModuleInfo,
    options: &PackOptions,
    penalty: u64,
) -> Result<(Vec<u8>, PackReport)> {
    pack_impl(input, info, options, penalty, false, None).map(|(out, report, _)| (out, report))
}

/// The bridgeable gaps of one packing problem, and the ones a layout splits
/// (for [`crate::pack_objective`]'s local search). A gap is a zero run
/// between two must-write runs of one domain (a memory's address space, or
/// one chunk of a global group) that a segment may cover; gaps of at most 4
/// bytes are always bridged and are not listed. A chunk of a global group
/// whose data ends in zeros has one more gap, its *tail*: from the end of
/// its last must-write run to the chunk's maximal end. Splitting it (what
/// the dynamic program always does) ends the last piece before the zeros
/// and needs a zero-length guard segment at the chunk's end; bridging it
/// writes the zeros (zero-filled memory that no earlier chunk wrote, so the
/// image is the same) and the piece that now ends at the chunk's end is the
/// guard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Gaps {
    /// Every bridgeable gap as `(domain, start address, length)`, in domain
    /// then address order.
    pub all: Vec<(usize, u64, u64)>,
    /// `split[k]`: the layout ends a segment at gap `all[k]`.
    pub split: Vec<bool>,
}

/// Hook for [`crate::pack_objective`]'s local search: [`pack_with_penalty`],
/// or, with `layout` (one flag per gap of [`Gaps::all`]), the layout that
/// splits exactly the gaps flagged `true` and bridges every other one (the
/// penalty is then ignored). Also returns the problem's gaps and the ones
/// the output splits. Same exactness guarantees as [`pack`] (every gap of
/// [`Gaps::all`] may be split or bridged); the output is validated.
pub(crate) fn pack_with_layout(
    input: &[u8],
    info: &ModuleInfo,
    options: &PackOptions,
    penalty: u64,
    layout: Option<&[bool]>,
) -> Result<(Vec<u8>, PackReport, Gaps)> {
    pack_impl(input, info, options, penalty, false, layout)
}

/// [`pack`] with a per-segment `penalty` or a fixed `layout` (see
/// [`pack_with_layout`]); `fallback`: return the input when the packed data
/// section is not smaller.
fn pack_impl(
    input: &[u8],
    info: &ModuleInfo,
    options: &PackOptions,
    penalty: u64,
    fallback: bool,
    layout: Option<&[bool]>,
) -> Result<(Vec<u8>, PackReport, Gaps)> {
    let segments = &info.data_segments;
    let mut report = PackReport {
        data_section_before: 0,
        data_section_after: 0,
        segments_before: segments.len() as u64,
        segments_after: segments.len() as u64,
        passive_segments: segments.iter().filter(|s| s.passive).count() as u64,
        passive_segments_after: segments.iter().filter(|s| s.passive).count() as u64,
        passive_bytes_before: segments
            .iter()
            .filter(|s| s.passive)
            .map(|s| s.range.len() as u64)
            .sum(),
        passive_bytes_after: 0,
        passive_segments_split: 0,
        memory_init_rewritten: 0,
        data_drop_rewritten: 0,
        code_section_before: 0,
        code_section_after: 0,
        kept_segments: 0,
        memories: Vec::new(),
        extended_const_would_save: None,
        cap_gap_bytes: None,
        changed: false,
        notes: Vec::new(),
    };
    let mut rewrite = Rewrite::new(input)?;
    let Some(data_index) = rewrite.find(ids::DATA) else {
        return Ok((input.to_vec(), report, Gaps::default()));
    };
    let data_range = rewrite.sections()[data_index].range.clone();
    let count_section = rewrite.find(ids::DATA_COUNT);
    let count_section_len = count_section.map_or(0, |i| rewrite.sections()[i].range.len() as u64);
    report.data_section_before = data_range.len() as u64;
    report.data_section_after = report.data_section_before;
    report.passive_bytes_after = report.passive_bytes_before;
    let code_section_len = rewrite
        .find(ids::CODE)
        .map_or(0, |i| rewrite.sections()[i].range.len() as u64);
    report.code_section_before = code_section_len;
    report.code_section_after = code_section_len;

    let memories = &info.memories;
    let zero_filled = |m: u32| memories[m as usize].import.is_none() || options.zero_filled_imports;
    let payload = |i: usize| &input[segments[i].payload.clone()];

    // 1. Exact prefix and suffix.
    let known_start = |i: usize| -> Option<u64> {
        match segments[i].offset.as_ref()? {
            Offset::Const { value } => Some(*value),
            Offset::Global {
                resolved: Some(v), ..
            } => Some(*v),
            _ => None,
        }
    };
    let in_bounds = |i: usize| -> bool {
        let seg = &segments[i];
        let memory = &memories[seg.memory.unwrap() as usize];
        known_start(i).is_some_and(|s| s as u128 + seg.len as u128 <= memory.min_bytes())
    };
    let active: Vec<usize> = (0..segments.len())
        .filter(|&i| !segments[i].passive)
        .collect();
    let prefix_len = active
        .iter()
        .position(|&i| !in_bounds(i))
        .unwrap_or(active.len());
    let (prefix, suffix) = active.split_at(prefix_len);

    // Code's uses of data indices, and the passive segments to split (or to
    // drop: never read), see [`crate::pack_passive`].
    let uses = crate::pack_passive::scan(input, info)?;
    let used: HashSet<u32> = uses.indices().collect();
    let index_width = uleb_len(segments.len() as u64 + 1);
    let splits: HashMap<u32, crate::pack_passive::Pieces> = (0..segments.len())
        .filter(|&i| segments[i].passive)
        .filter_map(|i| {
            let uses = uses.of(i as u32);
            crate::pack_passive::plan_segment(payload(i), i as u32, uses, info, index_width)
                .map(|pieces| (i as u32, pieces))
        })
        .collect();
    // Renumber data indices (rewriting the code that uses them) when passive
    // segments split, or when code uses indices and active segments are kept.
    let renumber = !splits.is_empty() || (!used.is_empty() && !suffix.is_empty());
    let passive_out: u64 = (0..segments.len() as u32)
        .filter(|&i| segments[i as usize].passive)
        .map(|i| splits.get(&i).map_or(1, |p| p.len() as u64))
        .sum();

    // 2. Domains: one per memory for the prefix.
    let mut domains: Vec<Domain<'_>> = Vec::new();
    for memory in memories {
        let placed: Vec<Placed<'_>> = prefix
            .iter()
            .filter(|&&i| segments[i].memory == Some(memory.index))
            .map(|&i| (known_start(i).unwrap(), i as u32, payload(i)))
            .collect();
        if placed.is_empty() {
            continue;
        }
        let header = Header {
            memory: memory.index,
            memory64: memory.memory64,
            base: Base::Const,
        };
        domains.push(Domain::new(
            header,
            &placed,
            zero_filled(memory.index),
            &Vec::new(),
        ));
    }
    let prefix_domains = domains.len();

    // The suffix: a global group, or kept byte for byte.
    let group = global_group(info, prefix, suffix);
    let mut pack_group = false;
    if let Some((memory, global)) = group {
        let mem = &memories[memory as usize];
        let header = Header {
            memory,
            memory64: mem.memory64,
            base: Base::Global(global),
        };
        let placed: Vec<Placed<'_>> = suffix
            .iter()
            .map(|&i| {
                let Some(Offset::Global { addend, .. }) = segments[i].offset else {
                    unreachable!()
                };
                (addend as u64, i as u32, payload(i))
            })
            .collect();
        // Chunks: a new chunk at each new maximum end (one chunk for a
        // defined memory, whose partial writes nobody can observe).
        let mut chunks: Vec<(Vec<Placed<'_>>, u64)> = Vec::new();
        for p in placed {
            let end = p.0 + p.2.len() as u64;
            match chunks.last_mut() {
                Some((members, max)) if end <= *max || mem.import.is_none() => {
                    members.push(p);
                    *max = (*max).max(end);
                }
                _ => chunks.push((vec![p], end)),
            }
        }
        let mut prior: Intervals = Vec::new();
        let mut group_domains = Vec::new();
        for (members, max) in chunks {
            let mut domain = Domain::new(header, &members, zero_filled(memory), &prior);
            domain.guard_at = Some(max);
            let covered: Intervals = domain.clusters.iter().map(|c| (c.start, c.end())).collect();
            prior = union(&prior, &covered);
            group_domains.push(domain);
        }
        if options.extended_const {
            pack_group = true;
            domains.extend(group_domains);
        } else {
            let (_, cost, _) = solve_all(&group_domains, 0);
            let guards: u64 = group_domains.iter().map(Domain::guard_cost).sum();
            let before: u64 = suffix.iter().map(|&i| segments[i].range.len() as u64).sum();
            report.extended_const_would_save = Some(before.saturating_sub(cost + guards));
        }
    }
    if !suffix.is_empty() && !pack_group {
        report.kept_segments = suffix.len() as u64;
        report.notes.push(match group {
            Some(_) => format!(
                "kept as is: {} segment(s) at global.get offsets (pass --extended-const to split them)",
                suffix.len()
            ),
            None => format!(
                "kept as is: data segment {} and the {} active segment(s) after it (an offset known only at instantiation, or out of bounds of the declared minimum: instantiation may trap there)",
                suffix[0],
                suffix.len() - 1
            ),
        });
    }

    // The bridgeable gaps; a fixed layout decides each of them.
    let mut gaps = Gaps::default();
    for (d, domain) in domains.iter().enumerate() {
        for (w, &bridge) in domain.runs.windows(2).zip(&domain.bridge) {
            if bridge {
                gaps.all.push((d, w[0].1, w[1].0 - w[0].1));
            }
        }
        if let Some((start, len)) = domain.tail_gap() {
            gaps.all.push((d, start, len));
        }
    }
    let mut penalty = penalty;
    if let Some(layout) = layout {
        if layout.len() != gaps.all.len() {
            return Err(Error::Internal(format!(
                "pack: a layout of {} gaps for {} gaps",
                layout.len(),
                gaps.all.len()
            )));
        }
        let mut flags = layout.iter().copied();
        for domain in &mut domains {
            domain.fix_gaps(&mut flags);
        }
        penalty = 0;
    }

    // 3. Optimise under the cap, for each width of the count LEB.
    let fixed: u64 = passive_out
        + if pack_group { 0 } else { suffix.len() as u64 }
        + domains.iter().map(Domain::guard_count).sum::<u64>();
    let cap = options.max_segments as u64;
    let lebs_per_count = 1 + u64::from(count_section.is_some());
    let chosen = choose_band(&domains, fixed, cap, lebs_per_count, penalty, true);
    let Some((solutions, _, gap)) = chosen else {
        return Err(Error::Refused(format!(
            "cannot meet --max-segments {cap}: the image needs at least {} segments",
            fixed + solve_all(&domains, u64::MAX / 4).2
        )));
    };
    report.cap_gap_bytes = gap;
    gaps.split = gaps
        .all
        .iter()
        .map(|&(d, start, _)| {
            let pieces = &solutions[d].pieces;
            let i = pieces.partition_point(|p| p.1 < start);
            pieces.get(i).is_some_and(|p| p.1 == start)
        })
        .collect();

    // 4. Order the output.
    let mut pieces: Vec<Out> = Vec::new();
    for (d, solution) in solutions.iter().enumerate().take(prefix_domains) {
        for &(start, end) in &solution.pieces {
            pieces.push(Out::Piece {
                domain: d,
                start,
                end,
            });
        }
    }
    let mut tail: Vec<Out> = Vec::new();
    if pack_group {
        for d in prefix_domains..domains.len() {
            let domain = &domains[d];
            let mut chunk: Vec<Out> = solutions[d]
                .pieces
                .iter()
                .map(|&(start, end)| Out::Piece {
                    domain: d,
                    start,
                    end,
                })
                .collect();
            let max = domain.guard_at.unwrap();
            if let Some(last) = chunk.pop() {
                if matches!(last, Out::Piece { end, .. } if end == max) {
                    chunk.insert(0, last);
                } else {
                    chunk.push(last);
                    chunk.insert(0, Out::Guard { domain: d, at: max });
                }
            } else {
                chunk.push(Out::Guard { domain: d, at: max });
            }
            tail.extend(chunk);
        }
    } else {
        tail.extend(suffix.iter().map(|&i| Out::Verbatim(i as u32)));
    }
    let mut out: Vec<Out> = Vec::new();
    let passive: Vec<u32> = (0..segments.len() as u32)
        .filter(|&i| segments[i as usize].passive)
        .collect();
    if renumber {
        out.extend(pieces);
        out.extend(tail);
        let active_used = used
            .iter()
            .copied()
            .filter(|&i| !segments[i as usize].passive)
            .min();
        if let (Some(i), true) = (active_used, out.is_empty()) {
            let memory = segments[i as usize].memory.unwrap();
            out.push(Out::Filler {
                memory,
                memory64: memories[memory as usize].memory64,
            });
        }
        for &i in &passive {
            match splits.get(&i) {
                Some(p) => out.extend(p.iter().map(|&(start, end)| Out::PassivePiece {
                    segment: i,
                    start,
                    end,
                })),
                None => out.push(Out::Verbatim(i)),
            }
        }
    } else if used.is_empty() {
        out.extend(pieces);
        out.extend(tail);
        out.extend(passive.iter().map(|&i| Out::Verbatim(i)));
    } else {
        // Code uses indices (and the suffix is empty): keep every index up to
        // the largest used one of the same kind.
        let max_used = *used.iter().max().unwrap() as usize;
        let mut pieces = pieces.into_iter();
        for (i, seg) in segments.iter().enumerate() {
            if i > max_used {
                break;
            }
            if seg.passive {
                out.push(Out::Verbatim(i as u32));
            } else {
                out.push(pieces.next().unwrap_or(Out::Filler {
                    memory: seg.memory.unwrap(),
                    memory64: memories[seg.memory.unwrap() as usize].memory64,
                }));
            }
        }
        out.extend(pieces);
        out.extend(tail);
        out.extend(
            passive
                .iter()
                .filter(|&&i| i as usize > max_used)
                .map(|&i| Out::Verbatim(i)),
        );
    }

    // 5. Encode.
    let mut section = crate::rewrite::DataSegments::new();
    let mut names: HashMap<u32, u32> = HashMap::new();
    let mut after: HashMap<u32, (u64, u64)> = HashMap::new();
    for (new_index, o) in out.iter().enumerate() {
        let new_index = new_index as u32;
        let (memory, size) = match *o {
            Out::Verbatim(i) => {
                let seg = &segments[i as usize];
                section.raw(&input[seg.range.clone()]);
                names.entry(i).or_insert(new_index);
                (seg.memory, seg.range.len() as u64)
            }
            Out::Piece { domain, start, end } => {
                let d = &domains[domain];
                section.active(d.header.memory, &d.header.expr(start), d.bytes(start, end));
                if let Some(owner) = d.owner(start) {
                    names.entry(owner).or_insert(new_index);
                }
                (
                    Some(d.header.memory),
                    d.header.segment_cost(start, end - start),
                )
            }
            Out::Guard { domain, at } => {
                let d = &domains[domain];
                section.active(d.header.memory, &d.header.expr(at), Cow::Borrowed(&[]));
                (Some(d.header.memory), d.header.segment_cost(at, 0))
            }
            Out::PassivePiece {
                segment,
                start,
                end,
            } => {
                section.passive(Cow::Borrowed(
                    &payload(segment as usize)[start as usize..end as usize],
                ));
                names.entry(segment).or_insert(new_index);
                (None, 0)
            }
            Out::Filler { memory, memory64 } => {
                let header = Header {
                    memory,
                    memory64,
                    base: Base::Const,
                };
                section.active(memory, &header.expr(0), Cow::Borrowed(&[]));
                (Some(memory), header.segment_cost(0, 0))
            }
        };
        if let Some(m) = memory {
            let entry = after.entry(m).or_default();
            entry.0 += 1;
            entry.1 += size;
        }
    }
    let new_section_len = section.encoded_len() as u64;
    let predicted: u64 = {
        let body: u64 = after.values().map(|v| v.1).sum::<u64>()
            + out
                .iter()
                .filter_map(|o| match o {
                    Out::Verbatim(i) if segments[*i as usize].passive => {
                        Some(segments[*i as usize].range.len() as u64)
                    }
                    Out::PassivePiece { start, end, .. } => {
                        Some(1 + uleb_len(end - start) + end - start)
                    }
                    _ => None,
                })
                .sum::<u64>();
        let body = body + uleb_len(out.len() as u64);
        1 + uleb_len(body) + body
    };
    if predicted != new_section_len {
        return Err(Error::Internal(format!(
            "pack: predicted data section of {predicted} bytes, encoded {new_section_len}"
        )));
    }
    let new_count_len = count_section.map_or(0, |_| 2 + uleb_len(out.len() as u64));
    let mut before_total = report.data_section_before + count_section_len;
    let mut after_total = new_section_len + new_count_len;
    let code = if renumber {
        let targets = code_targets(&out, segments, &uses, &splits);
        crate::pack_passive::rewrite_code(&mut rewrite, info, &targets)?
    } else {
        None
    };
    if let Some(code) = &code {
        before_total += code.code_section_before;
        after_total += code.code_section_after;
    }
    let must_change = segments.len() as u64 > cap;
    let remap = |old: u32| names.get(&old).copied();
    report.memories = memory_reports(info, options);
    for m in &mut report.memories {
        let (count, bytes) = after.get(&m.memory).copied().unwrap_or((0, 0));
        m.segments_after = count;
        m.bytes_after = bytes;
    }
    if fallback && after_total >= before_total && !must_change {
        for m in &mut report.memories {
            m.segments_after = m.segments_before;
            m.bytes_after = m.bytes_before;
        }
        report
            .notes
            .push("no smaller layout exists: output is the input".into());
        return Ok((input.to_vec(), report, gaps));
    }
    rewrite.replace_data(data_index, section);
    if count_section.is_some() {
        rewrite.set(&wasm_encoder::DataCountSection {
            count: out.len() as u32,
        });
    }
    rewrite.remap_data_names(remap)?;
    let output = rewrite.finish(crate::input::features(), "pack")?;
    report.data_section_after = new_section_len;
    report.segments_after = out.len() as u64;
    report.passive_segments_split = splits.len() as u64;
    report.passive_segments_after = 0;
    report.passive_bytes_after = 0;
    for o in &out {
        let size = match *o {
            Out::Verbatim(i) if segments[i as usize].passive => {
                segments[i as usize].range.len() as u64
            }
            Out::PassivePiece { start, end, .. } => 1 + uleb_len(end - start) + end - start,
            _ => continue,
        };
        report.passive_segments_after += 1;
        report.passive_bytes_after += size;
    }
    if let Some(code) = code {
        report.memory_init_rewritten = code.memory_init_rewritten;
        report.data_drop_rewritten = code.data_drop_rewritten;
        report.code_section_after = code.code_section_after;
    }
    report.changed = true;
    Ok((output, report, gaps))
}

/// Where code's references to each input segment go in `out` (see
/// [`crate::pack_passive`]): a kept passive segment to its new index, a split
/// one to its pieces, an active one (dropped at instantiation) to the first
/// active segment of the output.
fn code_targets(
    out: &[Out],
    segments: &[crate::model::DataSegment],
    uses: &crate::pack_passive::CodeUses,
    splits: &HashMap<u32, crate::pack_passive::Pieces>,
) -> HashMap<u32, crate::pack_passive::Target> {
    use crate::pack_passive::Target;
    let mut targets: HashMap<u32, Target> = splits
        .keys()
        .map(|&i| {
            let seg = &segments[i as usize];
            let target = Target::Split {
                pieces: Vec::new(),
                len: seg.len,
                droppable: uses.dropped(i),
            };
            (i, target)
        })
        .collect();
    let mut first_active = None;
    for (new_index, o) in out.iter().enumerate() {
        let new_index = new_index as u32;
        match *o {
            Out::Verbatim(i) if segments[i as usize].passive => {
                targets.insert(i, Target::Index(new_index));
            }
            Out::PassivePiece {
                segment,
                start,
                end,
            } => {
                if let Some(Target::Split { pieces, .. }) = targets.get_mut(&segment) {
                    pieces.push((new_index, start, end));
                }
            }
            _ => {
                first_active.get_or_insert(new_index);
            }
        }
    }
    for i in uses.indices() {
        if !segments[i as usize].passive {
            if let Some(a) = first_active {
                targets.insert(i, Target::Index(a));
            }
        }
    }
    targets
}

/// `Some((memory, global))` when the suffix is a global group (see the
/// module docs).
fn global_group(info: &ModuleInfo, prefix: &[usize], suffix: &[usize]) -> Option<(u32, u32)> {
    let first = &info.data_segments[*suffix.first()?];
    let memory = first.memory?;
    let Some(Offset::Global {
        global,
        resolved: None,
        ..
    }) = first.offset
    else {
        return None;
    };
    let mem = &info.memories[memory as usize];
    let space: u128 = if mem.memory64 { 1 << 64 } else { 1 << 32 };
    let all_in_group = suffix.iter().all(|&i| {
        let seg = &info.data_segments[i];
        seg.memory == Some(memory)
            && matches!(seg.offset, Some(Offset::Global { global: g, addend, resolved: None })
                if g == global && addend >= 0 && addend as u128 + seg.len as u128 <= space)
    });
    let alone = prefix
        .iter()
        .all(|&i| info.data_segments[i].memory != Some(memory));
    (all_in_group && alone).then_some((memory, global))
}

/// Per-memory figures before (the `after` fields start equal).
fn memory_reports(info: &ModuleInfo, options: &PackOptions) -> Vec<MemoryReport> {
    info.memories
        .iter()
        .map(|m| {
            let segs = info
                .data_segments
                .iter()
                .filter(|s| s.memory == Some(m.index));
            let (count, bytes) = segs.fold((0, 0), |(c, b), s| (c + 1, b + s.range.len() as u64));
            MemoryReport {
                memory: m.index,
                imported: m.import.is_some(),
                zero_filled: m.import.is_none() || options.zero_filled_imports,
                segments_before: count,
                segments_after: count,
                bytes_before: bytes,
                bytes_after: bytes,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Maximal non-zero runs found byte by byte, then gaps of at most
    /// `merge_gap` bridged in address order: what the scan must give.
    fn reference_runs(data: &[u8], base: u64, merge_gap: u64) -> Vec<(u64, u64)> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for (i, b) in data.iter().enumerate() {
            let at = base + i as u64;
            if *b == 0 {
                continue;
            }
            match runs.last_mut() {
                Some(last) if last.1 == at => last.1 = at + 1,
                _ => runs.push((at, at + 1)),
            }
        }
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in runs {
            match merged.last_mut() {
                Some(last) if s - last.1 <= merge_gap => last.1 = e,
                _ => merged.push((s, e)),
            }
        }
        merged
    }

    /// Bytes with runs and gaps of random lengths (gaps often 1-6 bytes,
    /// the lengths around `SMALL_GAP`), from a fixed xorshift seed.
    fn layout(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            let r = next();
            let n = match r % 4 {
                0 => 1 + (r >> 8) % 6,
                1 => 1 + (r >> 8) % 40,
                2 => (r >> 8) % 3000,
                _ => 1 + (r >> 8) % 20,
            } as usize;
            let fill = if data.len() % 2 == 0 {
                (r >> 40) as u8 | 1
            } else {
                0
            };
            data.extend(std::iter::repeat_n(fill, n.min(len - data.len())));
        }
        data
    }

    #[test]
    fn scanning_with_a_merge_gap_equals_merging_afterwards() {
        for seed in 1..40u64 {
            // Past the parallel block size for some seeds, so blocks join.
            let len = if seed % 4 == 0 {
                700_000
            } else {
                1 + (seed as usize * 7919) % 5000
            };
            let data = layout(seed, len);
            let base = seed * 1_000_003;
            for merge_gap in [0, SMALL_GAP] {
                let want = reference_runs(&data, base, merge_gap);
                let mut got = Vec::new();
                nonzero_runs(&data, base, &mut got, merge_gap);
                assert_eq!(got, want, "seed {seed}, gap {merge_gap}");
                let mut got = Vec::new();
                nonzero_runs_parallel(&data, base, &mut got, merge_gap);
                assert_eq!(got, want, "parallel, seed {seed}, gap {merge_gap}");
                // A run already in `out` that ends `merge_gap` bytes before
                // the first non-zero byte is extended, not duplicated.
                if let Some(&(s, e)) = want.first() {
                    let lead = (s - merge_gap.max(1), s - merge_gap);
                    let mut got = vec![lead];
                    nonzero_runs(&data, base, &mut got, merge_gap);
                    assert_eq!(got[0], (lead.0, e), "seed {seed}, gap {merge_gap}");
                    assert_eq!(got.len(), want.len());
                }
            }
        }
    }

    /// Runs of 1-3 non-zero bytes separated by zero gaps of `gap(i)` bytes.
    fn runs_image(count: usize, gap: impl Fn(usize) -> usize) -> Vec<u8> {
        let mut data = Vec::new();
        for i in 0..count {
            data.extend(std::iter::repeat_n(0x5a, 1 + i % 3));
            data.extend(std::iter::repeat_n(0, gap(i)));
        }
        data
    }

    fn domain_of(data: &[u8], base: u64) -> Domain<'_> {
        let header = Header {
            memory: 0,
            memory64: false,
            base: Base::Const,
        };
        Domain::new(header, &[(base, 0, data)], true, &Vec::new())
    }

    /// Giving bands up on their Lagrangian bound never changes the choice:
    /// the same pieces, total and gap as solving every band to the end, on
    /// images with 100-300 runs around the 127-segment band, caps that bind
    /// and caps that do not, with and without a data count section and a
    /// segment penalty.
    #[test]
    fn pruning_bands_gives_the_same_choice() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..60 {
            let count = 100 + (next() % 200) as usize;
            let gaps: Vec<usize> = (0..count).map(|_| 5 + (next() % 6) as usize).collect();
            let data = runs_image(count, |i| gaps[i]);
            let domains = [domain_of(&data, next() % 70_000)];
            let fixed = next() % 3;
            let cap = [100_000, 150, 127, 90][round % 4];
            let lebs = 1 + next() % 2;
            let penalty = [0, 0, 1, 3][(round / 4) % 4];
            let full = choose_band(&domains, fixed, cap, lebs, penalty, false);
            let pruned = choose_band(&domains, fixed, cap, lebs, penalty, true);
            match (&full, &pruned) {
                (Some(a), Some(b)) => {
                    assert_eq!(a.1, b.1, "round {round}: totals");
                    assert_eq!(a.2, b.2, "round {round}: gaps");
                    let pieces = |s: &[Solution]| -> Vec<Vec<(u64, u64)>> {
                        s.iter().map(|x| x.pieces.clone()).collect()
                    };
                    assert_eq!(pieces(&a.0), pieces(&b.0), "round {round}: pieces");
                }
                (None, None) => {}
                _ => panic!("round {round}: one way found a layout, the other not"),
            }
        }
        // 128 runs whose gaps all pay for a split (a segment header here is
        // 6 bytes), one of them by a single byte (a 7-byte gap): merging
        // there gives 127 segments, one byte more data and two count LEBs
        // one byte shorter, so the 127 band wins.
        let data = runs_image(128, |i| if i == 0 { 7 } else { 20 });
        let domains = [domain_of(&data, 1000)];
        assert_eq!(solve_all(&domains, 0).2, 128);
        for prune in [false, true] {
            let (solutions, ..) = choose_band(&domains, 0, 100_000, 2, 0, prune).unwrap();
            let n: usize = solutions.iter().map(|x| x.pieces.len()).sum();
            assert_eq!(n, 127, "the 127 band should win here (prune: {prune})");
        }
    }
}
