//! `pack --objective`: the data-section layout that makes the *compressed*
//! module smallest.
//!
//! Modules on the Web are served compressed, and the layout with the fewest
//! raw bytes is often not the one with the fewest compressed bytes: a
//! compressor encodes a long zero run in a few bits and repeats a segment
//! header cheaply, while every extra header with its own offset and length
//! is mostly literals. So dropping zero runs into many small segments
//! (the raw optimum) can make the gzip or brotli output larger, and merging
//! segments across zero gaps can make it smaller.
//!
//! # Objectives
//!
//! The size of the whole module after one compressor at its usual serving
//! level: [`Objective::Gzip`] (deflate level 9 in a gzip container, no file
//! name: `gzip -9n`), [`Objective::Brotli`] (quality 11, 16 MiB window:
//! `brotli -q 11`), [`Objective::Zstd`] (level 19: `zstd -19`), or
//! [`Objective::Raw`] (the module's own size: the plain [`crate::pack`]).
//! Compression uses the `flate2` (zlib-rs backend), `brotli` and `zstd`
//! crates.
//!
//! # Algorithm
//!
//! 1. **Candidates.** The raw pack's dynamic program with a per-segment
//!    penalty `lambda` ([`crate::pack::pack_with_penalty`]): `lambda = 0` is
//!    the raw optimum, a larger one bridges every gap shorter than about
//!    `lambda` bytes, and a penalty above every bridgeable gap gives one
//!    segment per bridgeable region (the fully merged layout). The sweep
//!    takes `lambda` in {0, 1, 4, 16, ..., 4^16} and stops once the segment
//!    count reaches the merged layout's (the count never grows with
//!    `lambda`). The input itself (the module unchanged) is a candidate too,
//!    unless it has more segments than the cap allows.
//! 2. **Evaluation.** Each distinct candidate (equal data sections are
//!    evaluated once) is scored by compressing its data section alone, at
//!    the serving level when the section is small and at a faster level of
//!    the same compressor for large ones (gzip level 6 above 2 MiB, brotli
//!    quality 9 above 128 KiB and 5 above 1 MiB, zstd level 9 above
//!    1 MiB), in parallel.
//! 3. **Local search.** Around the best sweep penalty `4^k`, the penalties
//!    `2 * 4^k` and `4^k / 2`, then the midpoints around the better of those,
//!    are evaluated the same way (three rounds of halving the step).
//! 4. **Check.** The best candidates by score (three for modules up to
//!    1 MiB, else one) are built as whole modules and compressed at the
//!    serving level, together with the input; the smallest so far wins, ties
//!    going to the input and then to the smaller penalty.
//! 5. **Gap search.** Penalty layouts split every gap longer than about the
//!    penalty and no shorter one, while the compressors react to single
//!    gaps: a split changes the offsets and lengths the compressor sees, and
//!    with them its matches, Huffman tables and block choices (on an
//!    Emscripten side module, one split among dozens of equal ones cuts the
//!    brotli output by 0.8% while most others grow it). So from each of the
//!    two smallest measured finalists that are pack layouts (in that order;
//!    the input counts when a layout rebuilds it byte for byte, e.g. the
//!    merged layout with its tail gaps bridged, see [`crate::pack`]'s
//!    `Gaps`), a steepest-descent search toggles single gaps (splits a
//!    bridged zero run or bridges a split one): each pass builds the layouts
//!    with one gap toggled, longest gap first, 8 at a time in parallel, and
//!    compresses each whole module at the serving level; the best of the
//!    pass is applied when strictly smaller, and passes repeat while one
//!    improved. A pass tries the 32 longest gaps. The work is bounded by a
//!    budget of serving-level compression (layouts times the size of the
//!    module they start from: 96 MiB for gzip, 8 MiB for brotli and zstd)
//!    and by 64 layouts, both shared by the two starts: so 64 layouts on a
//!    200 kB module under gzip, 20 on a 400 kB one under brotli, and none
//!    from a start where fewer than 8 fit the budget (above 1 MiB under
//!    brotli and zstd, 12 MiB under gzip: the penalty sweep alone decides
//!    there). The best layout found replaces the winner
//!    only when strictly smaller. So the output is never larger than
//!    the input under its own objective: when no candidate beats it, the
//!    output is the input, byte for byte.
//!
//! # Guarantees
//!
//! Every candidate is a [`crate::pack`] layout, so the initial memory image,
//! the segment cap, trap behaviour and everything the raw pass copies byte
//! for byte are exactly as in the raw pass; the output is validated there.
//! The result is deterministic: compressors are deterministic, candidates are
//! evaluated in a fixed order, and ties are broken by candidate order.
//!
//! # Cost
//!
//! One pack per sweep candidate (about 10 to 20), the candidates' data
//! sections compressed at the scoring level, a few whole-module
//! compressions at the serving level, and the gap search's budget. The
//! report's sizes (raw, gzip and brotli before and after, zstd as well under
//! `zstd`) add up to two compressions per compressor; they run in parallel.
//! Every layout is built by the pack pass, which validates it; on the
//! modules the search runs on, that is a few milliseconds against hundreds
//! for each compression. For a 5.6 MB module, brotli quality 11 dominates
//! (seconds per compression).

use crate::error::{Error, Result};
use crate::model::ModuleInfo;
use crate::pack::{pack, pack_with_layout, PackOptions, PackReport};
use crate::sections::{self, ids};
use rayon::prelude::*;
use serde::Serialize;
use std::io::Write;

/// What the layout minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// The module's own size (the plain pack).
    Raw,
    /// Size after `gzip -9n` (deflate level 9).
    Gzip,
    /// Size after `brotli -q 11` (16 MiB window).
    Brotli,
    /// Size after `zstd -19`.
    Zstd,
}

impl Objective {
    /// Every objective, in CLI order.
    pub const ALL: [Objective; 4] = [
        Objective::Raw,
        Objective::Gzip,
        Objective::Brotli,
        Objective::Zstd,
    ];

    /// The CLI name (`raw`, `gzip`, `brotli`, `zstd`).
    pub fn name(self) -> &'static str {
        match self {
            Objective::Raw => "raw",
            Objective::Gzip => "gzip",
            Objective::Brotli => "brotli",
            Objective::Zstd => "zstd",
        }
    }

    /// Size of `bytes` under this objective, at the serving level.
    pub fn size(self, bytes: &[u8]) -> u64 {
        match self {
            Objective::Raw => bytes.len() as u64,
            Objective::Gzip => gzip_size(bytes, 9),
            Objective::Brotli => brotli_size(bytes, 11),
            Objective::Zstd => zstd_size(bytes, 19),
        }
    }

    /// Size of `bytes` at the level used to score candidates (see the
    /// module docs): the serving level for small inputs.
    fn score(self, bytes: &[u8]) -> u64 {
        const MIB: usize = 1 << 20;
        let n = bytes.len();
        match self {
            Objective::Raw => n as u64,
            Objective::Gzip => gzip_size(bytes, if n <= 2 * MIB { 9 } else { 6 }),
            Objective::Brotli => brotli_size(
                bytes,
                if n <= 128 << 10 {
                    11
                } else if n <= MIB {
                    9
                } else {
                    5
                },
            ),
            Objective::Zstd => zstd_size(bytes, if n <= MIB { 19 } else { 9 }),
        }
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Objective {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Objective::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| format!("unknown objective {s:?} (raw, gzip, brotli or zstd)"))
    }
}

/// Bytes of the gzip stream (10-byte header without a file name, deflate at
/// `level`, 8-byte trailer).
pub fn gzip_size(bytes: &[u8], level: u32) -> u64 {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 2),
        flate2::Compression::new(level),
    );
    encoder.write_all(bytes).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec").len() as u64
}

/// Bytes of the brotli stream at `quality` with a 16 MiB window (the
/// `brotli` command's default).
pub fn brotli_size(bytes: &[u8], quality: i32) -> u64 {
    let params = brotli::enc::BrotliEncoderParams {
        quality,
        lgwin: 24,
        size_hint: bytes.len(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(bytes.len() / 2);
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).expect("writing to a Vec");
    out.len() as u64
}

/// Bytes of the zstd frame at `level`.
pub fn zstd_size(bytes: &[u8], level: i32) -> u64 {
    zstd::bulk::compress(bytes, level)
        .expect("zstd compresses any input")
        .len() as u64
}

/// Sizes of one module.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Sizes {
    /// Bytes as stored.
    pub raw: u64,
    /// After `gzip -9n`.
    pub gzip: u64,
    /// After `brotli -q 11`.
    pub brotli: u64,
    /// After `zstd -19`, when the objective is `zstd`.
    pub zstd: Option<u64>,
}

impl Sizes {
    /// Measure `module` (zstd too when `with_zstd`), compressors in parallel.
    pub fn of(module: &[u8], with_zstd: bool) -> Sizes {
        let ((gzip, brotli), zstd) = rayon::join(
            || {
                rayon::join(
                    || Objective::Gzip.size(module),
                    || Objective::Brotli.size(module),
                )
            },
            || with_zstd.then(|| Objective::Zstd.size(module)),
        );
        Sizes {
            raw: module.len() as u64,
            gzip,
            brotli,
            zstd,
        }
    }

    /// The figure for `objective`, when measured.
    pub fn get(&self, objective: Objective) -> Option<u64> {
        match objective {
            Objective::Raw => Some(self.raw),
            Objective::Gzip => Some(self.gzip),
            Objective::Brotli => Some(self.brotli),
            Objective::Zstd => self.zstd,
        }
    }
}

/// What the objective search did.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectiveReport {
    /// The objective.
    pub objective: Objective,
    /// Sizes of the input.
    pub before: Sizes,
    /// Sizes of the output.
    pub after: Sizes,
    /// Distinct layouts scored (the input included).
    pub candidates: u64,
    /// Per-segment penalty of the chosen layout (of the layout the local
    /// search started from, when it toggled gaps); `None` when the output is
    /// the input.
    pub penalty: Option<u64>,
    /// Gaps the local search toggled (split or bridged) in the layout at
    /// `penalty`.
    pub toggled: u64,
}

/// One scored layout: `penalty == None` is the input.
struct Candidate {
    penalty: Option<u64>,
    module: Vec<u8>,
    report: Option<PackReport>,
    section: Vec<u8>,
    score: u64,
    /// The pack layout that gives this data section: its penalty and which
    /// gaps it splits (for the input: a pack layout equal to it, if any).
    layout: Option<(u64, Vec<bool>)>,
}

/// Upper bound on the bytes the local search compresses at the serving
/// level (candidates times module size): about 2 to 4 s of one core per
/// objective on this machine's compressors.
fn search_budget(objective: Objective) -> u64 {
    match objective {
        Objective::Raw => 0,
        Objective::Gzip => 96 << 20,
        Objective::Brotli => 8 << 20,
        Objective::Zstd => 8 << 20,
    }
}

/// Local-search candidates built and compressed at once (fixed, so the
/// result does not depend on the thread count).
const SEARCH_BATCH: usize = 8;

/// Gaps a pass of the local search tries (the longest ones).
const SEARCH_GAPS: usize = 32;

/// Layouts the gap search builds at most by default, whatever the budget
/// (see [`pack_for_searching`]).
pub const SEARCH_LAYOUTS: u64 = 64;

/// The data section (header included) of a valid module; empty when absent.
fn data_section(module: &[u8]) -> Result<Vec<u8>> {
    Ok(sections::split(module)?
        .into_iter()
        .find(|s| s.id == ids::DATA)
        .map(|s| module[s.range].to_vec())
        .unwrap_or_default())
}

/// Pack `input` (a valid module; `info` its model) for `objective`. With
/// `sizes`, the report's compressed sizes are measured under
/// [`Objective::Raw`] too (otherwise they are only measured for the other
/// objectives, and `None` is returned for raw).
pub fn pack_for(
    input: &[u8],
    info: &ModuleInfo,
    options: &PackOptions,
    objective: Objective,
    sizes: bool,
) -> Result<(Vec<u8>, PackReport, Option<ObjectiveReport>)> {
    pack_for_searching(input, info, options, objective, sizes, SEARCH_LAYOUTS)
}

/// [`pack_for`] with the gap search (step 5 of the module docs) bounded by
/// `search_layouts` layouts instead of [`SEARCH_LAYOUTS`] (0: no search),
/// within the same compression budget.
pub fn pack_for_searching(
    input: &[u8],
    info: &ModuleInfo,
    options: &PackOptions,
    objective: Objective,
    sizes: bool,
    search_layouts: u64,
) -> Result<(Vec<u8>, PackReport, Option<ObjectiveReport>)> {
    let with_zstd = objective == Objective::Zstd;
    if objective == Objective::Raw {
        let (out, report) = pack(input, info, options)?;
        let objective_report = sizes.then(|| {
            let (before, after) =
                rayon::join(|| Sizes::of(input, false), || Sizes::of(&out, false));
            ObjectiveReport {
                objective,
                before,
                after,
                candidates: 1,
                penalty: report.changed.then_some(0),
                toggled: 0,
            }
        });
        return Ok((out, report, objective_report));
    }

    let input_segments = info.data_segments.len() as u64;
    let mut candidates: Vec<Candidate> = Vec::new();
    if input_segments <= options.max_segments as u64 {
        let section = data_section(input)?;
        candidates.push(Candidate {
            penalty: None,
            score: objective.score(&section),
            module: Vec::new(),
            report: None,
            section,
            layout: None,
        });
    }

    // Build and score the layouts for `penalties`, skipping ones already seen.
    // `counts`: the segment count of every penalty built so far.
    // `gaps`: the problem's bridgeable gaps (the same for every layout).
    let mut counts: Vec<(u64, u64)> = Vec::new();
    let mut gaps: Vec<(usize, u64, u64)> = Vec::new();
    type Built = (u64, Vec<u8>, PackReport, Vec<u8>, Vec<bool>);
    let add = |candidates: &mut Vec<Candidate>,
               counts: &mut Vec<(u64, u64)>,
               gaps: &mut Vec<(usize, u64, u64)>,
               penalties: &[u64]|
     -> Result<()> {
        let fresh: Vec<u64> = penalties
            .iter()
            .copied()
            .filter(|p| !counts.iter().any(|c| c.0 == *p))
            .collect();
        let built: Vec<Built> = fresh
            .into_iter()
            .map(|p| {
                let (module, report, g) = pack_with_layout(input, info, options, p, None)?;
                let section = data_section(&module)?;
                *gaps = g.all;
                Ok((p, module, report, section, g.split))
            })
            .collect::<Result<_>>()?;
        let mut new: Vec<Built> = Vec::new();
        for b in built {
            counts.push((b.0, b.2.segments_after));
            if let Some(c) = candidates.iter_mut().find(|c| c.section == b.3) {
                if c.layout.is_none() {
                    c.layout = Some((b.0, b.4));
                }
                continue;
            }
            if !new.iter().any(|n: &Built| n.3 == b.3) {
                new.push(b);
            }
        }
        let scores: Vec<u64> = new.par_iter().map(|b| objective.score(&b.3)).collect();
        for ((penalty, module, report, section, split), score) in new.into_iter().zip(scores) {
            candidates.push(Candidate {
                penalty: Some(penalty),
                module,
                report: Some(report),
                section,
                score,
                layout: Some((penalty, split)),
            });
        }
        Ok(())
    };

    // 1-2. The sweep: the merged layout first, then 0, 1, 4, 16, ... until
    // the count reaches the merged one.
    const MERGED: u64 = 1 << 32;
    add(&mut candidates, &mut counts, &mut gaps, &[MERGED])?;
    let merged_count = counts[0].1;
    // The merged layout with every tail gap bridged too (no guard segments):
    // for a single segment ending in zeros, the input's own layout.
    if !gaps.is_empty() {
        let flags = vec![false; gaps.len()];
        let (module, report, _) = pack_with_layout(input, info, options, 0, Some(&flags))?;
        let section = data_section(&module)?;
        match candidates.iter_mut().find(|c| c.section == section) {
            Some(c) => {
                if c.layout.is_none() {
                    c.layout = Some((MERGED, flags));
                }
            }
            None => candidates.push(Candidate {
                penalty: Some(MERGED),
                score: objective.score(&section),
                module,
                report: Some(report),
                section,
                layout: Some((MERGED, flags)),
            }),
        }
    }
    let mut penalty = 0u64;
    loop {
        add(&mut candidates, &mut counts, &mut gaps, &[penalty])?;
        let count = counts.last().map_or(0, |c| c.1);
        if penalty >= MERGED || count <= merged_count {
            break;
        }
        penalty = if penalty == 0 { 1 } else { penalty * 4 };
    }

    // 3. Local search around the best penalty (by score, then order).
    let best_penalty = |candidates: &[Candidate]| -> Option<u64> {
        candidates
            .iter()
            .filter(|c| c.penalty.is_some())
            .min_by_key(|c| c.score)
            .and_then(|c| c.penalty)
    };
    if let Some(mut center) = best_penalty(&candidates).filter(|&p| p > 0 && p < MERGED) {
        let mut step = center / 2;
        for _ in 0..3 {
            if step == 0 {
                break;
            }
            add(
                &mut candidates,
                &mut counts,
                &mut gaps,
                &[center - step, center + step],
            )?;
            center = best_penalty(&candidates).unwrap_or(center);
            step /= 2;
        }
    }

    // 4. Check the best by serving-level compression of the whole module.
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&i| (candidates[i].score, candidates[i].penalty.is_some(), i));
    let keep = if input.len() <= 1 << 20 { 3 } else { 1 };
    let mut finalists: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| candidates[i].penalty.is_some())
        .take(keep)
        .collect();
    let input_index = candidates.iter().position(|c| c.penalty.is_none());
    if let Some(i) = input_index {
        finalists.insert(0, i);
    }
    if finalists.is_empty() {
        return Err(Error::Internal(
            "pack --objective: no candidate layout".into(),
        ));
    }
    let module_of = |i: usize| -> &[u8] {
        match candidates[i].penalty {
            None => input,
            Some(_) => &candidates[i].module,
        }
    };
    let measured: Vec<u64> = finalists
        .par_iter()
        .map(|&i| objective.size(module_of(i)))
        .collect();
    let (winner_pos, _) = measured
        .iter()
        .enumerate()
        .min_by_key(|&(k, &size)| (size, k))
        .expect("finalists are not empty");
    let mut winner = finalists[winner_pos];
    let mut winner_size = measured[winner_pos];

    // 5. Gap search from the two smallest measured finalists with a pack
    // layout, in that order, the second with the budget the first left:
    // toggle single gaps, longest first, keeping what shrinks the whole
    // module under the serving-level compressor.
    let mut starts: Vec<(usize, u64)> = finalists
        .iter()
        .copied()
        .zip(measured.iter().copied())
        .filter(|&(i, _)| candidates[i].layout.is_some())
        .collect();
    starts.sort_by_key(|&(i, size)| (size, i));
    starts.truncate(2);
    let mut toggled = 0u64;
    let mut searched = 0u64;
    let mut best: Option<(Found, u64)> = None;
    // The budget counts each layout as the size of the module it starts
    // from (a toggle changes it by a few bytes; merged layouts can be much
    // larger than the input).
    let mut budget = search_budget(objective);
    let mut limit = search_layouts;
    for (start, start_size) in starts {
        let start_len = module_of(start).len().max(1) as u64;
        let layouts = limit.min(budget / start_len);
        if layouts < SEARCH_BATCH as u64 {
            continue; // too large for a useful search within the budget
        }
        let (penalty, layout) = candidates[start].layout.clone().expect("filtered");
        let (found, built) = local_search(
            input, info, options, objective, &gaps, layout, start_size, layouts,
        )?;
        searched += built;
        limit -= built;
        budget = budget.saturating_sub(built * start_len);
        if let Some(found) = found {
            if best.as_ref().is_none_or(|b| found.size < b.0.size) {
                best = Some((found, penalty));
            }
        }
    }
    if let Some((found, penalty)) = best {
        if found.size < winner_size {
            searched -= 1; // counted once, as a candidate
            winner_size = found.size;
            toggled = found.toggled;
            let section = data_section(&found.module)?;
            candidates.push(Candidate {
                penalty: Some(penalty),
                module: found.module,
                report: Some(found.report),
                section,
                score: 0,
                layout: None,
            });
            winner = candidates.len() - 1;
        }
    }

    // Report: the objective's figures are known; measure the others.
    let others = |module: &[u8], known: u64| -> Sizes {
        let mut sizes = Sizes::of_except(module, objective, with_zstd);
        match objective {
            Objective::Gzip => sizes.gzip = known,
            Objective::Brotli => sizes.brotli = known,
            Objective::Zstd => sizes.zstd = Some(known),
            Objective::Raw => {}
        }
        sizes
    };
    let input_size = match input_index.and_then(|i| finalists.iter().position(|&f| f == i)) {
        Some(k) => measured[k],
        None => objective.size(input),
    };
    let winner_is_input = candidates[winner].penalty.is_none();
    let (before, after) = if winner_is_input {
        let s = others(input, input_size);
        (s, s)
    } else {
        rayon::join(
            || others(input, input_size),
            || others(&candidates[winner].module, winner_size),
        )
    };
    let report_of = ObjectiveReport {
        objective,
        before,
        after,
        candidates: candidates.len() as u64 + searched,
        penalty: candidates[winner].penalty,
        toggled,
    };
    let first_report = candidates.iter().find_map(|c| c.report.clone());
    let winner = candidates.swap_remove(winner);
    match (winner.penalty, winner.report) {
        (Some(_), Some(report)) => Ok((winner.module, report, Some(report_of))),
        _ => {
            // The input: a candidate's report, with the "after" figures of
            // an unchanged module.
            let mut report = match first_report {
                Some(report) => report,
                None => pack(input, info, options)?.1,
            };
            if report.changed {
                report.changed = false;
                report.data_section_after = report.data_section_before;
                report.segments_after = report.segments_before;
                for m in &mut report.memories {
                    m.segments_after = m.segments_before;
                    m.bytes_after = m.bytes_before;
                }
                report.cap_gap_bytes = None;
            }
            report.notes.push(format!(
                "no layout compresses better under {objective}: output is the input"
            ));
            Ok((input.to_vec(), report, Some(report_of)))
        }
    }
}

/// The best layout the local search found.
struct Found {
    module: Vec<u8>,
    report: PackReport,
    size: u64,
    toggled: u64,
}

/// Local search over single-gap toggles from `layout` (size `size` under
/// `objective`): each pass tries toggling each of the [`SEARCH_GAPS`]
/// longest gaps (longest first, then index), in batches of [`SEARCH_BATCH`] built and
/// compressed at the serving level in parallel, and then applies the best
/// toggle of the pass (the first on ties) when it is strictly smaller;
/// passes repeat while one improved, until `limit` layouts were built.
/// Returns the best layout when it is smaller than the start, and the number
/// of layouts built.
#[allow(clippy::too_many_arguments)]
fn local_search(
    input: &[u8],
    info: &ModuleInfo,
    options: &PackOptions,
    objective: Objective,
    gaps: &[(usize, u64, u64)],
    mut layout: Vec<bool>,
    mut size: u64,
    limit: u64,
) -> Result<(Option<Found>, u64)> {
    let mut order: Vec<usize> = (0..gaps.len()).collect();
    order.sort_by_key(|&k| (std::cmp::Reverse(gaps[k].2), k));
    order.truncate(SEARCH_GAPS);
    let mut built = 0u64;
    let mut best: Option<Found> = None;
    let mut toggles: Vec<bool> = vec![false; gaps.len()];
    while built < limit {
        // The best toggle of this pass: (module, report, size, gap).
        let mut pass: Option<(Vec<u8>, PackReport, u64, usize)> = None;
        for batch in order.chunks(SEARCH_BATCH) {
            let room = limit.saturating_sub(built) as usize;
            if room == 0 {
                break;
            }
            let batch = &batch[..batch.len().min(room)];
            built += batch.len() as u64;
            let results: Vec<Option<(Vec<u8>, PackReport, u64)>> = batch
                .par_iter()
                .map(|&k| {
                    let mut flags = layout.clone();
                    flags[k] = !flags[k];
                    match pack_with_layout(input, info, options, 0, Some(&flags)) {
                        // Over the segment cap: not a candidate.
                        Err(Error::Refused(_)) => Ok(None),
                        Err(e) => Err(e),
                        Ok((module, report, _)) => {
                            let size = objective.size(&module);
                            Ok(Some((module, report, size)))
                        }
                    }
                })
                .collect::<Result<_>>()?;
            for (result, &k) in results.into_iter().zip(batch) {
                if let Some((module, report, s)) = result {
                    if s < pass.as_ref().map_or(size, |p| p.2) {
                        pass = Some((module, report, s, k));
                    }
                }
            }
        }
        let Some((module, report, s, k)) = pass else {
            break;
        };
        size = s;
        layout[k] = !layout[k];
        toggles[k] = !toggles[k];
        best = Some(Found {
            module,
            report,
            size,
            toggled: toggles.iter().filter(|t| **t).count() as u64,
        });
    }
    Ok((best, built))
}

impl Sizes {
    /// [`Sizes::of`] without compressing under `skip` (left 0 / `None`).
    fn of_except(module: &[u8], skip: Objective, with_zstd: bool) -> Sizes {
        let run = |o: Objective, wanted: bool| (wanted && o != skip).then(|| o.size(module));
        let ((gzip, brotli), zstd) = rayon::join(
            || {
                rayon::join(
                    || run(Objective::Gzip, true),
                    || run(Objective::Brotli, true),
                )
            },
            || run(Objective::Zstd, with_zstd),
        );
        Sizes {
            raw: module.len() as u64,
            gzip: gzip.unwrap_or(0),
            brotli: brotli.unwrap_or(0),
            zstd,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{compare, initial_images, ImageOptions};

    /// xorshift64.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// `n` bytes: non-zero records separated by zero runs of 5 to 300 bytes.
    fn sparse(state: &mut u64, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < n {
            for _ in 0..1 + next(state) % 12 {
                out.push(1 + (next(state) % 255) as u8);
            }
            out.resize(out.len() + 5 + (next(state) % 296) as usize, 0);
        }
        // End in zeros: every chunk of a side module has a tail gap.
        out.truncate(n - 12);
        out.resize(n, 0);
        out
    }

    fn data_string(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("\\{b:02x}")).collect()
    }

    /// An Emscripten-style side module: an imported memory, data at
    /// `global.get 0` plus constants, with one segment that ends below an
    /// earlier maximum (a second chunk) and one overlapping an earlier one.
    fn side_module(seed: u64) -> Vec<u8> {
        let mut state = seed;
        let mut text = String::from(
            r#"(module (import "env" "memory" (memory 1)) (import "env" "__memory_base" (global i32))"#,
        );
        for (at, len) in [(0u32, 3000usize), (4000, 2500), (3500, 700), (7000, 1200)] {
            let bytes = sparse(&mut state, len);
            text += &format!(
                "(data (offset (i32.add (global.get 0) (i32.const {at}))) \"{}\")",
                data_string(&bytes)
            );
        }
        text += ")";
        wat::parse_str(&text).unwrap()
    }

    /// A defined memory with segments at constant offsets, two overlapping.
    fn defined_module(seed: u64) -> Vec<u8> {
        let mut state = seed;
        let mut text = String::from("(module (memory 1)");
        for (at, len) in [(16u32, 2000usize), (1500, 1500), (6000, 3000)] {
            let bytes = sparse(&mut state, len);
            text += &format!("(data (i32.const {at}) \"{}\")", data_string(&bytes));
        }
        text += ")";
        wat::parse_str(&text).unwrap()
    }

    /// Images agree for these imported-global values and memory sizes
    /// (a memory too small for the data makes both instantiations trap).
    fn same_image(a: &[u8], b: &[u8], side: bool) {
        let settings: &[(u64, u128)] = if side {
            // The data ends at 8200 (chunks end at 3000, 6500 and 8200):
            // memories that fit it exactly, or trap in a chunk or its tail.
            &[
                (1024, 65536),
                (0, 65536),
                (60000, 65536),
                (1024, 1024 + 8200),
                (1024, 1024 + 8199),
                (1024, 1024 + 6500),
                (1024, 1024 + 6499),
                (0, 2995),
            ]
        } else {
            &[(0, 65536)]
        };
        for &(base, size) in settings {
            let options = ImageOptions {
                zero_filled_imports: true,
                globals: [(0, base)].into_iter().collect(),
                memory_sizes: if side {
                    [(0, size)].into_iter().collect()
                } else {
                    Default::default()
                },
            };
            let before = initial_images(a, &options).unwrap();
            let after = initial_images(b, &options).unwrap();
            if let Err(e) = compare(&before, &after) {
                panic!("images differ (base {base}, memory {size}): {e}");
            }
        }
    }

    #[test]
    fn every_gap_layout_keeps_the_image_and_is_what_was_asked() {
        let options = PackOptions {
            extended_const: true,
            zero_filled_imports: true,
            ..Default::default()
        };
        for seed in 1..4u64 {
            for (module, side) in [(side_module(seed), true), (defined_module(seed), false)] {
                let info = ModuleInfo::read(&module).unwrap();
                let (_, _, gaps) = pack_with_layout(&module, &info, &options, 0, None).unwrap();
                assert!(gaps.all.len() >= 10, "{} gaps", gaps.all.len());
                // A penalty layout is exactly described by the gaps it splits.
                for penalty in [0, 20, 200, 1 << 32] {
                    let (out, _, found) =
                        pack_with_layout(&module, &info, &options, penalty, None).unwrap();
                    let (again, _, _) =
                        pack_with_layout(&module, &info, &options, 0, Some(&found.split)).unwrap();
                    assert_eq!(again, out, "penalty {penalty}");
                }
                let mut state = seed * 77;
                for _ in 0..12 {
                    let flags: Vec<bool> = gaps
                        .all
                        .iter()
                        .map(|_| next(&mut state).is_multiple_of(3))
                        .collect();
                    let (out, report, found) =
                        pack_with_layout(&module, &info, &options, 0, Some(&flags)).unwrap();
                    crate::input::validate(&out).unwrap();
                    assert_eq!(found.all, gaps.all);
                    assert_eq!(found.split, flags, "the layout asked for");
                    let split = flags.iter().filter(|f| **f).count() as u64;
                    assert!(report.segments_after > split, "{report:?}");
                    same_image(&module, &out, side);
                }
                // A layout of the wrong length is refused.
                assert!(pack_with_layout(&module, &info, &options, 0, Some(&[true])).is_err());
            }
        }
    }

    #[test]
    fn the_gap_search_only_keeps_strict_gains_and_counts_its_toggles() {
        let options = PackOptions {
            extended_const: true,
            zero_filled_imports: true,
            ..Default::default()
        };
        let module = side_module(9);
        let info = ModuleInfo::read(&module).unwrap();
        let (_, _, gaps) = pack_with_layout(&module, &info, &options, 1 << 32, None).unwrap();
        let mut improved = 0;
        for objective in [Objective::Gzip, Objective::Brotli] {
            let (start, _, _) =
                pack_with_layout(&module, &info, &options, 0, Some(&gaps.split)).unwrap();
            let start_size = objective.size(&start);
            let (found, built) = local_search(
                &module,
                &info,
                &options,
                objective,
                &gaps.all,
                gaps.split.clone(),
                start_size,
                20,
            )
            .unwrap();
            assert!(built <= 20);
            if let Some(found) = found {
                improved += 1;
                assert!(found.size < start_size);
                assert_eq!(found.size, objective.size(&found.module));
                assert!(found.toggled >= 1);
                same_image(&module, &found.module, true);
            }
            // No budget: nothing built.
            let (none, built) = local_search(
                &module,
                &info,
                &options,
                objective,
                &gaps.all,
                gaps.split.clone(),
                start_size,
                0,
            )
            .unwrap();
            assert!(none.is_none() && built == 0);
        }
        // From the merged layout, some toggle pays on this module (a fixed,
        // deterministic input: the compressors are pinned by Cargo.lock).
        assert!(
            improved > 0,
            "the search found nothing under either objective"
        );
    }
}
