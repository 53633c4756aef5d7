//! Passive-segment packing for the [`crate::pack`] pass.
//!
//! # What counts as constant
//!
//! A `memory.init` *site* has a constant source offset and length when the
//! two instructions directly before it are `i32.const`s (its second and
//! third operands). Structured control flow cannot enter between two
//! instructions of one block, so those two values are exactly the operands
//! whenever the site runs. A passive segment is packed when every one of its
//! `memory.init` sites is constant (a segment with no site at all is packed
//! too: nothing reads it) and no `array.new_data` or `array.init_data`
//! reads it (GC code: the array instructions are not rewritten). Any other
//! segment is kept whole (it may still be renumbered).
//!
//! # Layout
//!
//! Only bytes that some site can read without trapping (the union of its
//! `[src, src + len)` ranges) are *needed*; the others are never observed.
//! The needed non-zero bytes form runs, separated by gaps. A layout *cuts*
//! some gaps; the stretches between cuts become passive pieces (bridged gaps
//! are stored as zeros). A dynamic program over the cuts minimises the data
//! bytes (`0x01`, the length LEB, the bytes, for each piece) plus the code
//! bytes of every rewritten site and of the `data.drop`s (one per piece),
//! using exact LEB lengths of every constant and index (indices with the
//! width of the output's segment count, the new local with a one-byte index,
//! the local declaration not counted). A site is charged its sequence
//! overhead (drop check, fill) once, at the first cut gap it meets: a site
//! that meets a cut gap `b` and not the cut before it, `a`, meets no earlier
//! cut, since it is an interval. Cut candidates are the gaps of the needed
//! image; when there are too many for the quadratic program, only the
//! longest are candidates (the others are bridged). The segment is split
//! only when the layout costs fewer bytes than the segment and its sites as
//! they are.
//!
//! # Rewriting a site (`dst` on the stack, `s`, `n` constants, `L` the
//! # segment's length)
//!
//! * `s + n > L`: always traps, whatever `dst` or the drop state:
//!   `drop; unreachable`.
//! * `n = 0`: traps when `dst` is past the memory's end or, for `s > 0`, when
//!   the segment is dropped: a *drop check* when `s > 0` and code drops the
//!   segment somewhere, then `memory.fill dst 0 0` (the same bounds check on
//!   `dst`, writes nothing).
//! * `[s, s + n)` inside one piece `P`: `memory.init P` at `s - start(P)`,
//!   which traps exactly when the original does (`n > 0`, so a dropped piece
//!   traps like the dropped segment).
//! * otherwise: a drop check (when code drops the segment), then
//!   `local.tee $d; memory.fill $d 0 n` (checks `dst + n` against the memory
//!   size without wrapping, and zeroes the range), then `memory.init` of
//!   each overlapping piece at `$d + offset`. Once the fill passed, every
//!   later op is in bounds (`$d + offset` cannot wrap: it is below
//!   `dst + n`, itself at most the memory size), so the sequence traps
//!   exactly when the original does and writes nothing before trapping; it
//!   then writes the same bytes. `dst` is evaluated once (it is the value on
//!   the stack). The new local (`i32`, or `i64` for a memory64 memory) is
//!   appended to the function's locals.
//!
//! The drop check is `memory.init P 0 |P| 0` for a non-empty piece `P` of
//! the segment (memory `mem`, destination `0`): it writes nothing and traps
//! exactly when `P` is dropped. `data.drop` of the segment drops every
//! piece, so `P` is dropped exactly when the segment is. A segment whose
//! layout has no non-empty piece but needs a drop check keeps its first
//! byte as a one-byte piece. Each sequence names the memory of the original
//! `memory.init` (multi-memory) and uses its address type (memory64).
//!
//! Sites in unreachable code are rewritten the same way (the sequences
//! validate on a polymorphic stack). `memory.init`/`data.drop` (and the array
//! instructions) of segments that are not split are renumbered; those of
//! active segments (dropped at instantiation) go to any active segment of the
//! output. Only function bodies that change are re-encoded; the others are
//! copied byte for byte.

use crate::error::{Error, Result};
use crate::input::may_use_data;
use crate::model::ModuleInfo;
use crate::pack::{sleb_len, uleb_len};
use crate::rewrite::Rewrite;
use crate::sections::ids;
use std::collections::HashMap;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{Instruction, ValType};
use wasmparser::Operator;

/// One `memory.init` of a segment.
#[derive(Debug, Clone, Copy)]
struct Site {
    memory: u32,
    /// `(src, len)` when constant.
    constant: Option<(u32, u32)>,
}

/// How code uses one data segment.
#[derive(Debug, Clone, Default)]
pub(crate) struct SegmentUses {
    sites: Vec<Site>,
    drops: u64,
    /// `array.new_data` and `array.init_data` (GC) that read the segment:
    /// such a segment is kept whole (it may still be renumbered).
    array_reads: u64,
}

/// Every `memory.init`, `data.drop`, `array.new_data` and `array.init_data`
/// of the code section, by segment.
#[derive(Debug, Clone, Default)]
pub(crate) struct CodeUses {
    segments: HashMap<u32, SegmentUses>,
}

impl CodeUses {
    /// Segment indices code refers to.
    pub(crate) fn indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.segments.keys().copied()
    }
}

fn perr(input: &[u8]) -> impl Fn(wasmparser::BinaryReaderError) -> Error + '_ {
    move |e| Error::from_parser(input, &e)
}

/// Tracks whether the last two operators were `i32.const`s.
#[derive(Default)]
struct LastConsts([Option<i32>; 2]);

impl LastConsts {
    fn push(&mut self, op: &Operator<'_>) {
        let value = match op {
            Operator::I32Const { value } => Some(*value),
            _ => None,
        };
        self.0 = [self.0[1], value];
    }

    fn pair(&self) -> Option<(u32, u32)> {
        Some((self.0[0]? as u32, self.0[1]? as u32))
    }
}

/// Scan the code section for the instructions that name a data segment:
/// `memory.init`, `data.drop`, `array.new_data` and `array.init_data`.
pub(crate) fn scan(input: &[u8], info: &ModuleInfo) -> Result<CodeUses> {
    let mut uses = CodeUses::default();
    // Without a data count section no instruction naming a data segment
    // validates. (The model's instruction counts cover `memory.init` and
    // `data.drop` only, not the GC array instructions, so they cannot
    // rule the scan out.)
    if info.data_count.is_none() {
        return Ok(uses);
    }
    let err = perr(input);
    for payload in wasmparser::Parser::new(0).parse_all(input) {
        if let wasmparser::Payload::CodeSectionEntry(body) = payload.map_err(&err)? {
            if !may_use_data(&input[body.range()]) {
                continue;
            }
            let mut ops = body.get_operators_reader().map_err(&err)?;
            let mut last = LastConsts::default();
            while !ops.eof() {
                let op = ops.read().map_err(&err)?;
                match op {
                    Operator::MemoryInit { mem, data_index } => {
                        uses.segments
                            .entry(data_index)
                            .or_default()
                            .sites
                            .push(Site {
                                memory: mem,
                                constant: last.pair(),
                            });
                    }
                    Operator::DataDrop { data_index } => {
                        uses.segments.entry(data_index).or_default().drops += 1;
                    }
                    Operator::ArrayNewData {
                        array_data_index, ..
                    }
                    | Operator::ArrayInitData {
                        array_data_index, ..
                    } => {
                        uses.segments
                            .entry(array_data_index)
                            .or_default()
                            .array_reads += 1;
                    }
                    _ => {}
                }
                last.push(&op);
            }
        }
    }
    Ok(uses)
}

/// Bytes of `memory.init` (0xFC 8 data memory).
fn init_op(data_width: u64, memory: u32) -> u64 {
    2 + data_width + uleb_len(memory as u64)
}

/// Bytes of `memory.fill` (0xFC 11 memory).
fn fill_op(memory: u32) -> u64 {
    2 + uleb_len(memory as u64)
}

fn i32_const(v: u32) -> u64 {
    1 + sleb_len(v as i32 as i64)
}

/// `i32.const v` or `i64.const v` (same length for values below 2^31).
fn addr_const(v: u64, memory64: bool) -> u64 {
    if memory64 {
        1 + sleb_len(v as i64)
    } else {
        i32_const(v as u32)
    }
}

/// Encoded size of a passive segment of `len` bytes.
fn passive_cost(len: u64) -> u64 {
    1 + uleb_len(len) + len
}

/// A constant, non-trapping site with `n > 0` in segment space.
struct Range {
    memory: u32,
    memory64: bool,
    start: u64,
    end: u64,
}

impl Range {
    fn meets(&self, s: u64, e: u64) -> bool {
        self.start < e && s < self.end
    }
}

/// The pieces of a split segment, `[start, end)` in the segment.
pub(crate) type Pieces = Vec<(u64, u64)>;

/// At most this many cut candidates per segment for the quadratic program
/// (fewer when the segment has many sites).
const MAX_CANDIDATES: usize = 600;

/// The best layout of passive segment `data` (used as `uses`, drop state
/// observed when `uses.drops > 0`), or `None` when keeping it whole is at
/// least as small. `width`: LEB width of the output's segment indices.
pub(crate) fn plan_segment(
    data: &[u8],
    index: u32,
    uses: Option<&SegmentUses>,
    info: &ModuleInfo,
    width: u64,
) -> Option<Pieces> {
    let empty = SegmentUses::default();
    let uses = uses.unwrap_or(&empty);
    if uses.array_reads > 0 || uses.sites.iter().any(|s| s.constant.is_none()) {
        return None;
    }
    let total = data.len() as u64;
    let droppable = uses.drops > 0;
    let memory64 = |m: u32| info.memories[m as usize].memory64;
    // Cost as it is.
    let mut before = passive_cost(total) + uses.drops * (2 + uleb_len(index as u64));
    // Layout-independent part of the new cost; ranges the layout serves.
    let mut fixed = 0u64;
    let mut ranges: Vec<Range> = Vec::new();
    let mut needs_check = false;
    for site in &uses.sites {
        let (s, n) = site.constant.unwrap();
        let (s, n) = (s as u64, n as u64);
        before += i32_const(s as u32)
            + i32_const(n as u32)
            + init_op(uleb_len(index as u64), site.memory);
        let m64 = memory64(site.memory);
        let drop_check = 2 + i32_const(2) + 2 + init_op(width, site.memory);
        if s + n > total {
            fixed += 2; // drop; unreachable
        } else if n == 0 {
            if s > 0 && droppable {
                fixed += drop_check;
                needs_check = true;
            }
            fixed += 2 + addr_const(0, m64) + fill_op(site.memory);
        } else {
            ranges.push(Range {
                memory: site.memory,
                memory64: m64,
                start: s,
                end: s + n,
            });
        }
    }
    // Needed non-zero runs.
    let mut needed: Vec<(u64, u64)> = ranges.iter().map(|r| (r.start, r.end)).collect();
    needed.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (s, e) in needed {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for (s, e) in merged {
        let slice = &data[s as usize..e as usize];
        let mut pos = 0;
        while let Some(p) = slice[pos..].iter().position(|b| *b != 0) {
            let start = pos + p;
            let end = memchr::memchr(0, &slice[start..]).map_or(slice.len(), |q| start + q);
            runs.push((s + start as u64, s + end as u64));
            pos = end;
        }
    }
    // Gaps: before the first run, between runs, after the last.
    let mut gaps: Vec<(u64, u64)> = Vec::with_capacity(runs.len() + 1);
    let mut cursor = 0;
    for &(s, e) in &runs {
        gaps.push((cursor, s));
        cursor = e;
    }
    gaps.push((cursor, total));
    // Bound the program's work (candidates^2 * sites) for segments with
    // many sites.
    let budget = 40_000_000 / (ranges.len() as u64 + 1);
    let max_candidates = ((budget as f64).sqrt() as usize).clamp(2, MAX_CANDIDATES);
    if gaps.len() > max_candidates {
        let mut by_len: Vec<usize> = (0..gaps.len()).collect();
        by_len.sort_by_key(|&i| (std::cmp::Reverse(gaps[i].1 - gaps[i].0), i));
        by_len.truncate(max_candidates);
        by_len.sort_unstable();
        gaps = by_len.into_iter().map(|i| gaps[i]).collect();
    }
    // Nodes: a virtual empty cut at 0, the candidate gaps, one at the end.
    let mut nodes = Vec::with_capacity(gaps.len() + 2);
    nodes.push((0, 0));
    nodes.extend(gaps);
    nodes.push((total, total));
    let local = 2; // local.get / local.tee with a one-byte index
    let transition = |a: (u64, u64), b: (u64, u64)| -> u64 {
        let (p0, p1) = (a.1, b.0);
        let mut cost = 0;
        if p1 > p0 {
            cost += passive_cost(p1 - p0) + uses.drops * (2 + width);
        }
        for r in &ranges {
            let (x, y) = (r.start.max(p0), r.end.min(p1));
            if x < y {
                if r.start >= p0 && r.end <= p1 {
                    cost += i32_const((r.start - p0) as u32)
                        + i32_const((r.end - r.start) as u32)
                        + init_op(width, r.memory);
                } else {
                    cost += local
                        + if x > r.start {
                            addr_const(x - r.start, r.memory64) + 1
                        } else {
                            0
                        }
                        + i32_const((x - p0) as u32)
                        + i32_const((y - x) as u32)
                        + init_op(width, r.memory);
                }
            }
            if r.meets(b.0, b.1) && !r.meets(a.0, a.1) {
                let check = if droppable {
                    2 + i32_const(2) + 2 + init_op(width, r.memory)
                } else {
                    0
                };
                cost +=
                    check + local + 2 + addr_const(r.end - r.start, r.memory64) + fill_op(r.memory);
            }
        }
        cost
    };
    let n = nodes.len();
    let mut best: Vec<u64> = vec![u64::MAX; n];
    let mut from: Vec<usize> = vec![0; n];
    best[0] = 0;
    for b in 1..n {
        for a in 0..b {
            let c = best[a].saturating_add(transition(nodes[a], nodes[b]));
            if c < best[b] {
                best[b] = c;
                from[b] = a;
            }
        }
    }
    let mut pieces: Pieces = Vec::new();
    let mut b = n - 1;
    while b > 0 {
        let a = from[b];
        if nodes[b].0 > nodes[a].1 {
            pieces.push((nodes[a].1, nodes[b].0));
        }
        b = a;
    }
    pieces.reverse();
    let mut after = best[n - 1] + fixed;
    // A drop check needs a non-empty piece.
    let split_sites = ranges
        .iter()
        .any(|r| !pieces.iter().any(|&(p0, p1)| p0 <= r.start && r.end <= p1));
    if pieces.is_empty() && droppable && (needs_check || split_sites) {
        pieces.push((0, 1));
        after += passive_cost(1) + uses.drops * (2 + width);
    }
    (after < before).then_some(pieces)
}

/// Where code's references to one input segment go.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// The same segment (or, for an active one, any active segment) at this
    /// output index.
    Index(u32),
    /// A split passive segment: `(output index, start, end)` of each piece.
    Split {
        pieces: Vec<(u32, u64, u64)>,
        len: u64,
        droppable: bool,
    },
}

/// What [`rewrite_code`] did.
#[derive(Debug, Clone, Default)]
pub(crate) struct CodeReport {
    pub memory_init_rewritten: u64,
    pub data_drop_rewritten: u64,
    pub functions_reencoded: u64,
    pub code_section_before: u64,
    pub code_section_after: u64,
}

impl CodeUses {
    /// Drop state of segment `index` is observable (code drops it).
    pub(crate) fn dropped(&self, index: u32) -> bool {
        self.segments.get(&index).is_some_and(|u| u.drops > 0)
    }

    /// The uses of segment `index`.
    pub(crate) fn of(&self, index: u32) -> Option<&SegmentUses> {
        self.segments.get(&index)
    }
}

/// Function parameter counts of the defined functions, in order.
fn param_counts(rewrite: &Rewrite<'_>, input: &[u8]) -> Result<Vec<u32>> {
    let err = perr(input);
    let mut types: Vec<u32> = Vec::new();
    if let Some(index) = rewrite.find(ids::TYPE) {
        let reader = wasmparser::TypeSectionReader::new(rewrite.reader(index)).map_err(&err)?;
        for group in reader {
            for sub in group.map_err(&err)?.into_types() {
                types.push(match &sub.composite_type.inner {
                    wasmparser::CompositeInnerType::Func(f) => f.params().len() as u32,
                    _ => 0,
                });
            }
        }
    }
    let mut out = Vec::new();
    if let Some(index) = rewrite.find(ids::FUNCTION) {
        let reader = wasmparser::FunctionSectionReader::new(rewrite.reader(index)).map_err(&err)?;
        for ty in reader {
            let ty = ty.map_err(&err)?;
            out.push(types.get(ty as usize).copied().unwrap_or(0));
        }
    }
    Ok(out)
}

/// A segment an array instruction reads is never split ([`plan_segment`]).
fn split_array_read() -> Error {
    Error::Internal("pack: an array instruction reads a split segment".into())
}

fn reencode_err(e: wasm_encoder::reencode::Error<std::convert::Infallible>) -> Error {
    Error::Internal(format!("pack: re-encoding failed: {e}"))
}

/// Re-encode the bodies whose `memory.init`/`data.drop` change under
/// `targets` (old index to target; indices missing keep their number), and
/// replace the code section. Returns `None` when no body changes.
pub(crate) fn rewrite_code(
    rewrite: &mut Rewrite<'_>,
    info: &ModuleInfo,
    targets: &HashMap<u32, Target>,
) -> Result<Option<CodeReport>> {
    let Some(code_index) = rewrite.find(ids::CODE) else {
        return Ok(None);
    };
    let input = rewrite.input();
    let err = perr(input);
    let changes = |data_index: u32| match targets.get(&data_index) {
        None => false,
        Some(Target::Index(i)) => *i != data_index,
        Some(Target::Split { .. }) => true,
    };
    let params = param_counts(rewrite, input)?;
    let reader = wasmparser::CodeSectionReader::new(rewrite.reader(code_index)).map_err(&err)?;
    let mut section = wasm_encoder::CodeSection::new();
    let mut report = CodeReport {
        code_section_before: rewrite.sections()[code_index].range.len() as u64,
        ..CodeReport::default()
    };
    for (f, body) in reader.into_iter().enumerate() {
        let body = body.map_err(&err)?;
        let mut ops = body.get_operators_reader().map_err(&err)?;
        let mut touched = false;
        while !ops.eof() {
            match ops.read().map_err(&err)? {
                Operator::MemoryInit { data_index, .. }
                | Operator::DataDrop { data_index }
                | Operator::ArrayNewData {
                    array_data_index: data_index,
                    ..
                }
                | Operator::ArrayInitData {
                    array_data_index: data_index,
                    ..
                } if changes(data_index) => {
                    touched = true;
                    break;
                }
                _ => {}
            }
        }
        if !touched {
            section.raw(&input[body.range()]);
            continue;
        }
        report.functions_reencoded += 1;
        let mut locals: Vec<(u32, ValType)> = Vec::new();
        let mut count = params.get(f).copied().unwrap_or(0) as u64;
        for pair in body.get_locals_reader().map_err(&err)? {
            let (n, ty) = pair.map_err(&err)?;
            count += n as u64;
            locals.push((n, RoundtripReencoder.val_type(ty).map_err(reencode_err)?));
        }
        let mut emitter = Emitter {
            out: Vec::new(),
            pending: Vec::new(),
            next_local: count,
            scratch: Vec::new(),
            info,
        };
        let mut ops = body.get_operators_reader().map_err(&err)?;
        while !ops.eof() {
            let op = ops.read().map_err(&err)?;
            emitter.op(op, targets, &mut report)?;
        }
        emitter.flush();
        for (_, ty) in &emitter.scratch {
            locals.push((1, *ty));
        }
        let mut function = wasm_encoder::Function::new(locals);
        for i in &emitter.out {
            function.instruction(i);
        }
        section.function(&function);
    }
    if report.functions_reencoded == 0 {
        return Ok(None);
    }
    let mut encoded = Vec::new();
    wasm_encoder::Encode::encode(&section, &mut encoded);
    report.code_section_after = 1 + encoded.len() as u64;
    rewrite.replace(code_index, &section);
    Ok(Some(report))
}

/// Re-encodes one body.
struct Emitter<'i, 'a> {
    out: Vec<Instruction<'a>>,
    /// `i32.const`s held back (at most two) until the next operator shows
    /// whether they are the operands of a split `memory.init`.
    pending: Vec<i32>,
    next_local: u64,
    /// New locals: (index, type).
    scratch: Vec<(u32, ValType)>,
    info: &'i ModuleInfo,
}

impl<'a> Emitter<'_, 'a> {
    fn flush(&mut self) {
        for v in self.pending.drain(..) {
            self.out.push(Instruction::I32Const(v));
        }
    }

    fn local(&mut self, ty: ValType) -> Result<u32> {
        if let Some((i, _)) = self.scratch.iter().find(|(_, t)| *t == ty) {
            return Ok(*i);
        }
        let index = u32::try_from(self.next_local + self.scratch.len() as u64)
            .map_err(|_| Error::Refused("pack: too many locals to add one".into()))?;
        self.scratch.push((index, ty));
        Ok(index)
    }

    fn op(
        &mut self,
        op: Operator<'a>,
        targets: &HashMap<u32, Target>,
        report: &mut CodeReport,
    ) -> Result<()> {
        match op {
            Operator::I32Const { value } => {
                if self.pending.len() == 2 {
                    let v = self.pending.remove(0);
                    self.out.push(Instruction::I32Const(v));
                }
                self.pending.push(value);
                return Ok(());
            }
            Operator::MemoryInit { mem, data_index } => match targets.get(&data_index) {
                Some(Target::Split {
                    pieces,
                    len,
                    droppable,
                }) => {
                    if self.pending.len() != 2 {
                        return Err(Error::Internal(
                            "pack: memory.init of a split segment without constant operands".into(),
                        ));
                    }
                    let n = self.pending.pop().unwrap() as u32 as u64;
                    let s = self.pending.pop().unwrap() as u32 as u64;
                    self.flush();
                    self.site(mem, s, n, pieces, *len, *droppable)?;
                    report.memory_init_rewritten += 1;
                    return Ok(());
                }
                Some(Target::Index(i)) => {
                    self.flush();
                    self.out.push(Instruction::MemoryInit {
                        mem,
                        data_index: *i,
                    });
                    return Ok(());
                }
                None => {}
            },
            Operator::DataDrop { data_index } => match targets.get(&data_index) {
                Some(Target::Split { pieces, .. }) => {
                    self.flush();
                    for &(i, _, _) in pieces {
                        self.out.push(Instruction::DataDrop(i));
                    }
                    report.data_drop_rewritten += 1;
                    return Ok(());
                }
                Some(Target::Index(i)) => {
                    self.flush();
                    self.out.push(Instruction::DataDrop(*i));
                    return Ok(());
                }
                None => {}
            },
            Operator::ArrayNewData {
                array_type_index,
                array_data_index,
            }
            | Operator::ArrayInitData {
                array_type_index,
                array_data_index,
            } => match targets.get(&array_data_index) {
                Some(Target::Index(i)) => {
                    self.flush();
                    let array_data_index = *i;
                    self.out
                        .push(if matches!(op, Operator::ArrayNewData { .. }) {
                            Instruction::ArrayNewData {
                                array_type_index,
                                array_data_index,
                            }
                        } else {
                            Instruction::ArrayInitData {
                                array_type_index,
                                array_data_index,
                            }
                        });
                    return Ok(());
                }
                Some(Target::Split { .. }) => return Err(split_array_read()),
                None => {}
            },
            _ => {}
        }
        self.flush();
        self.out
            .push(RoundtripReencoder.instruction(op).map_err(reencode_err)?);
        Ok(())
    }

    /// The sequence for `memory.init` of a split segment (see the module docs).
    fn site(
        &mut self,
        mem: u32,
        s: u64,
        n: u64,
        pieces: &[(u32, u64, u64)],
        len: u64,
        droppable: bool,
    ) -> Result<()> {
        let memory64 = self.info.memories[mem as usize].memory64;
        let addr = |v: u64| {
            if memory64 {
                Instruction::I64Const(v as i64)
            } else {
                Instruction::I32Const(v as u32 as i32)
            }
        };
        let c32 = |v: u64| Instruction::I32Const(v as u32 as i32);
        if s + n > len {
            self.out.push(Instruction::Drop);
            self.out.push(Instruction::Unreachable);
            return Ok(());
        }
        let check = |out: &mut Vec<Instruction<'a>>| -> Result<()> {
            let &(p, p0, p1) = pieces
                .iter()
                .find(|p| p.2 > p.1)
                .ok_or_else(|| Error::Internal("pack: no piece for a drop check".into()))?;
            out.extend([
                addr(0),
                c32(p1 - p0),
                c32(0),
                Instruction::MemoryInit { mem, data_index: p },
            ]);
            Ok(())
        };
        if n == 0 {
            if s > 0 && droppable {
                check(&mut self.out)?;
            }
            self.out
                .extend([c32(0), addr(0), Instruction::MemoryFill(mem)]);
            return Ok(());
        }
        let (s_end, e) = (s, s + n);
        if let Some(&(p, p0, _)) = pieces.iter().find(|p| p.1 <= s_end && e <= p.2) {
            self.out.extend([
                c32(s - p0),
                c32(n),
                Instruction::MemoryInit { mem, data_index: p },
            ]);
            return Ok(());
        }
        if droppable {
            check(&mut self.out)?;
        }
        let overlapping: Vec<(u32, u64, u64)> = pieces
            .iter()
            .copied()
            .filter(|p| p.1 < e && s < p.2)
            .collect();
        let ty = if memory64 { ValType::I64 } else { ValType::I32 };
        let d = if overlapping.is_empty() {
            None
        } else {
            let d = self.local(ty)?;
            self.out.push(Instruction::LocalTee(d));
            Some(d)
        };
        self.out
            .extend([c32(0), addr(n), Instruction::MemoryFill(mem)]);
        if let Some(d) = d {
            for (p, p0, p1) in overlapping {
                let (x, y) = (s.max(p0), e.min(p1));
                self.out.push(Instruction::LocalGet(d));
                if x > s {
                    self.out.push(addr(x - s));
                    self.out.push(if memory64 {
                        Instruction::I64Add
                    } else {
                        Instruction::I32Add
                    });
                }
                self.out.extend([
                    c32(x - p0),
                    c32(y - x),
                    Instruction::MemoryInit { mem, data_index: p },
                ]);
            }
        }
        Ok(())
    }
}
