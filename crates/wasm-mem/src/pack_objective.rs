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
//!    serving level, together with the input; the smallest wins, ties going
//!    to the input and then to the smaller penalty. So the output is never
//!    larger than the input under its own objective: when no candidate beats
//!    it, the output is the input, byte for byte.
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
//! One pack per candidate (about 10 to 20), the candidates' data sections
//! compressed at the scoring level, and a few whole-module compressions at
//! the serving level. The report's sizes (raw, gzip and brotli before and
//! after, zstd as well under `zstd`) add up to two compressions per
//! compressor; they run in parallel. For a 5.6 MB module, brotli quality 11
//! dominates (seconds per compression).

use crate::error::{Error, Result};
use crate::model::ModuleInfo;
use crate::pack::{pack, pack_with_penalty, PackOptions, PackReport};
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
    /// Per-segment penalty of the chosen layout; `None` when the output is
    /// the input.
    pub penalty: Option<u64>,
}

/// One scored layout: `penalty == None` is the input.
struct Candidate {
    penalty: Option<u64>,
    module: Vec<u8>,
    report: Option<PackReport>,
    section: Vec<u8>,
    score: u64,
}

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
        });
    }

    // Build and score the layouts for `penalties`, skipping ones already seen.
    // `counts`: the segment count of every penalty built so far.
    let mut counts: Vec<(u64, u64)> = Vec::new();
    let add = |candidates: &mut Vec<Candidate>,
               counts: &mut Vec<(u64, u64)>,
               penalties: &[u64]|
     -> Result<()> {
        let fresh: Vec<u64> = penalties
            .iter()
            .copied()
            .filter(|p| !counts.iter().any(|c| c.0 == *p))
            .collect();
        let built: Vec<(u64, Vec<u8>, PackReport, Vec<u8>)> = fresh
            .into_iter()
            .map(|p| {
                let (module, report) = pack_with_penalty(input, info, options, p)?;
                let section = data_section(&module)?;
                Ok((p, module, report, section))
            })
            .collect::<Result<_>>()?;
        let mut new: Vec<(u64, Vec<u8>, PackReport, Vec<u8>)> = Vec::new();
        for b in built {
            counts.push((b.0, b.2.segments_after));
            let seen = candidates.iter().any(|c| c.section == b.3)
                || new
                    .iter()
                    .any(|n: &(u64, Vec<u8>, PackReport, Vec<u8>)| n.3 == b.3);
            if !seen {
                new.push(b);
            }
        }
        let scores: Vec<u64> = new.par_iter().map(|b| objective.score(&b.3)).collect();
        for ((penalty, module, report, section), score) in new.into_iter().zip(scores) {
            candidates.push(Candidate {
                penalty: Some(penalty),
                module,
                report: Some(report),
                section,
                score,
            });
        }
        Ok(())
    };

    // 1-2. The sweep: the merged layout first, then 0, 1, 4, 16, ... until
    // the count reaches the merged one.
    const MERGED: u64 = 1 << 32;
    add(&mut candidates, &mut counts, &[MERGED])?;
    let merged_count = counts[0].1;
    let mut penalty = 0u64;
    loop {
        add(&mut candidates, &mut counts, &[penalty])?;
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
    let winner = finalists[winner_pos];
    let winner_size = measured[winner_pos];

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
        candidates: candidates.len() as u64,
        penalty: candidates[winner].penalty,
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
