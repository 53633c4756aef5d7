//! Native tests: a shadow-model randomized test (bounded here, millions of
//! operations with `--ignored`), a heap validator that walks every block and
//! free list, threads on the locked allocator, and the C functions.

use super::*;
use std::collections::BTreeMap;
use std::vec::Vec;

/// xorshift64*: deterministic, no dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A backend over leaked memory that records its regions and, when `gap` is
/// set, leaves a hole between regions so none continues the previous top.
struct TestBackend {
    arena: Arena,
    gap: usize,
    regions: Vec<(usize, usize)>,
}

impl TestBackend {
    fn new(bytes: usize, gap: usize) -> Self {
        let memory: &'static mut [u64] = std::vec![0u64; bytes / 8].leak();
        TestBackend {
            arena: unsafe { Arena::new(memory.as_mut_ptr().cast(), bytes) },
            gap,
            regions: Vec::new(),
        }
    }
}

unsafe impl Backend for TestBackend {
    fn grow(&mut self, min_bytes: usize) -> Option<(*mut u8, usize)> {
        if self.gap != 0 && !self.regions.is_empty() {
            self.arena.grow(self.gap)?;
        }
        let (start, len) = self.arena.grow(min_bytes)?;
        assert_eq!(start as usize % G, 0);
        assert!(len >= min_bytes && len % G == 0);
        self.regions.push((start as usize, len));
        Some((start, len))
    }
}

impl TestBackend {
    /// Like `new`, over memory that starts at a 64 KiB boundary, so the
    /// offsets of aligned blocks from the arena's start do not depend on
    /// where the test's memory happens to be.
    fn aligned(bytes: usize, gap: usize) -> Self {
        let memory: &'static mut [u64] = std::vec![0u64; (bytes + 65536) / 8].leak();
        let pad = (memory.as_mut_ptr() as usize).wrapping_neg() & 0xffff;
        TestBackend {
            arena: unsafe { Arena::new(memory.as_mut_ptr().cast::<u8>().add(pad), bytes) },
            gap,
            regions: Vec::new(),
        }
    }
}

/// The backend's regions with the ones that continue each other joined.
fn merged_regions(heap: &Heap<TestBackend>) -> Vec<(usize, usize)> {
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for &(start, len) in &heap.backend.regions {
        match merged.last_mut() {
            Some((s, l)) if *s + *l == start => *l += len,
            _ => merged.push((start, len)),
        }
    }
    merged
}

/// Walks every block of every region and every free list and checks all
/// invariants: sizes, flags, footers, no two free neighbours, each free block
/// in the list of its class exactly once, bitmaps matching the lists.
fn validate(heap: &Heap<TestBackend>) {
    let mut free_blocks = BTreeMap::new();
    for (start, len) in merged_regions(heap) {
        // The first block's address is the region's start (its padding word
        // stands where a footer of a block before would be).
        let mut block = start;
        let mut prev_free = false;
        loop {
            let header = unsafe { rd_at(block, HEADER) };
            let size = header & !FLAGS;
            assert_eq!(
                header & PREV_FREE != 0,
                prev_free,
                "PREV_FREE at {block:#x}"
            );
            assert_eq!(header & FLAGS & !(FREE | PREV_FREE), 0);
            if size == 0 {
                assert_eq!(header & FREE, 0, "sentinel is used");
                assert!(block + G <= start + len);
                break;
            }
            assert!(
                size >= MIN_BLOCK && size.is_multiple_of(G),
                "size {size} at {block:#x}"
            );
            assert!(
                block + size + G <= start + len,
                "block runs past its region"
            );
            let free = header & FREE != 0;
            if free {
                assert!(!prev_free, "two free blocks in a row at {block:#x}");
                assert_eq!(unsafe { rd(block + size) }, size, "footer");
                free_blocks.insert(block, size);
            }
            prev_free = free;
            block += size;
        }
    }
    let mut listed = 0;
    for class in 0..LISTS {
        let mut block = heap.heads[class];
        let row = class >> SL_LOG2;
        let bit = heap.row_bits[row] & (1 << (class & (SL - 1))) != 0;
        assert_eq!(bit, block != 0, "bitmap of class {class}");
        let mut prev = heap.tag(class);
        while block != 0 {
            let size = free_blocks
                .get(&block)
                .copied()
                .expect("listed block is free");
            assert_eq!(class_of(size), class, "block in the wrong class");
            assert_eq!(unsafe { rd_at(block, PREV) }, prev, "back link");
            listed += 1;
            prev = block;
            block = unsafe { rd_at(block, NEXT) };
        }
    }
    for row in 0..ROWS {
        assert_eq!(heap.rows & (1 << row) != 0, heap.row_bits[row] != 0);
    }
    assert_eq!(listed, free_blocks.len(), "every free block is listed once");
}

struct Live {
    ptr: *mut u8,
    size: usize,
    align: usize,
    tag: u8,
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

fn random_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=1 => 0,
        2..=69 => 1 + rng.below(128) as usize,
        70..=94 => 129 + rng.below(4096) as usize,
        _ => 4097 + rng.below(70_000) as usize,
    }
}

fn random_align(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=79 => 1 << rng.below(4),
        80..=94 => 1 << rng.below(8),
        95..=98 => 4096,
        _ => 65536,
    }
}

fn fill(live: &Live) {
    unsafe { live.ptr.write_bytes(live.tag, live.size) }
}

/// Checks the first and last 64 bytes of the first `len` bytes and one in the
/// middle (metadata writes land at block edges).
fn check(live: &Live, len: usize) {
    let bytes = unsafe { std::slice::from_raw_parts(live.ptr, len) };
    let edge = len.min(64);
    let ok = bytes[..edge].iter().all(|&b| b == live.tag)
        && bytes[len - edge..].iter().all(|&b| b == live.tag)
        && (len == 0 || bytes[len / 2] == live.tag);
    assert!(
        ok,
        "contents of block {:p} ({} bytes) changed",
        live.ptr, live.size
    );
}

/// Runs `ops` random allocations, frees and reallocs against a shadow model.
fn randomized(seed: u64, ops: usize, arena_bytes: usize, gap: usize, validate_every: usize) {
    let mut heap = Heap::new(TestBackend::new(arena_bytes, gap));
    let mut rng = Rng(seed);
    let mut live: Vec<Live> = Vec::new();
    // start -> end of every live block, to check that none overlap.
    let mut ranges: BTreeMap<usize, usize> = BTreeMap::new();
    let insert = |ranges: &mut BTreeMap<usize, usize>, live: &Live| {
        let start = live.ptr as usize;
        let end = start + live.size.max(1);
        assert_eq!(start % live.align, 0, "alignment {}", live.align);
        if let Some((_, &prev_end)) = ranges.range(..=start).next_back() {
            assert!(prev_end <= start, "overlaps the block before");
        }
        if let Some((&next, _)) = ranges.range(start..).next() {
            assert!(end <= next, "overlaps the block after");
        }
        ranges.insert(start, end);
    };
    let (mut allocs, mut failures, mut moves) = (0, 0, 0);
    let mut target = 1000;
    for op in 0..ops {
        if op % 20_000 == 0 {
            // Vary the live population so the heap fills up and drains.
            target = 10 + rng.below(3000) as usize;
        }
        let choice = rng.below(100);
        if choice < 45 && live.len() < target || live.is_empty() {
            let (size, align) = (random_size(&mut rng), random_align(&mut rng));
            let ptr = unsafe { heap.alloc(size, align) };
            if ptr.is_null() {
                failures += 1;
                continue;
            }
            allocs += 1;
            let block = Live {
                ptr,
                size,
                align,
                tag: rng.next() as u8,
            };
            assert!(unsafe { heap.usable_size(ptr) } >= size);
            insert(&mut ranges, &block);
            fill(&block);
            live.push(block);
        } else if choice < 80 {
            let i = rng.below(live.len() as u64) as usize;
            let block = live.swap_remove(i);
            check(&block, block.size);
            ranges.remove(&(block.ptr as usize));
            unsafe { heap.free(block.ptr) };
        } else {
            let i = rng.below(live.len() as u64) as usize;
            let new_size = match rng.below(4) {
                0 => live[i].size / 2,
                1 => live[i].size + 1 + rng.below(64) as usize,
                2 => live[i].size * 2 + 8,
                _ => random_size(&mut rng),
            };
            let block = &mut live[i];
            let ptr = unsafe { heap.realloc(block.ptr, layout(block.size, block.align), new_size) };
            if ptr.is_null() {
                failures += 1;
                check(block, block.size);
                continue;
            }
            ranges.remove(&(block.ptr as usize));
            if ptr != block.ptr {
                moves += 1;
            }
            block.ptr = ptr;
            check(block, block.size.min(new_size));
            block.size = new_size;
            block.tag = rng.next() as u8;
            insert(&mut ranges, block);
            fill(block);
        }
        if validate_every != 0 && op % validate_every == 0 {
            validate(&heap);
        }
    }
    validate(&heap);
    assert!(allocs > ops / 4, "the run allocated ({allocs} of {ops})");
    std::eprintln!(
        "seed {seed}: {ops} ops, {allocs} allocations, {failures} null (arena full), {moves} moved reallocs"
    );
    // Free everything: full coalescing leaves one free block per region.
    for block in live.drain(..) {
        check(&block, block.size);
        unsafe { heap.free(block.ptr) };
    }
    validate(&heap);
    let free: usize = (0..LISTS)
        .map(|class| {
            let mut n = 0;
            let mut block = heap.heads[class];
            while block != 0 {
                n += 1;
                block = unsafe { rd_at(block, NEXT) };
            }
            n
        })
        .sum();
    assert_eq!(
        free,
        merged_regions(&heap).len(),
        "one free block per region"
    );
}

#[test]
fn randomized_bounded() {
    randomized(0x5eed_0001, 200_000, 8 << 20, 0, 500);
}

#[test]
fn randomized_bounded_small_arena() {
    // A small arena: allocations fail often and the null paths are exercised.
    randomized(0x5eed_0002, 100_000, 1 << 20, 0, 500);
}

#[test]
fn randomized_bounded_noncontiguous() {
    // Every grow leaves a hole, so regions never continue the top.
    randomized(0x5eed_0003, 100_000, 16 << 20, 64, 500);
}

/// The long run: `cargo test -p wasm-mem-alloc --release -- --ignored`;
/// `WASM_MEM_ALLOC_OPS` sets the operations per seed (default 5,000,000).
#[test]
#[ignore]
fn randomized_long() {
    let ops = std::env::var("WASM_MEM_ALLOC_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    for (seed, gap) in [(0x1000_0001, 0), (0x1000_0002, 64), (0x1000_0003, 0)] {
        randomized(seed, ops, 32 << 20, gap, 0);
    }
}

/// The inlined fast path (left out of size-optimized builds) is a pure
/// shortcut: two heaps over equal arenas, one allocating through `alloc`
/// (fast path first) and one through `alloc_slow` only, return the same
/// offsets and end in the same state for the same random sequence.
#[test]
fn fast_path_matches_slow_path() {
    let mut fast = Heap::new(TestBackend::new(4 << 20, 0));
    let mut slow = Heap::new(TestBackend::new(4 << 20, 0));
    let base = |heap: &Heap<TestBackend>| heap.backend.regions.first().map_or(0, |r| r.0);
    let mut rng = Rng(0xfa57_0001);
    let mut live: Vec<(*mut u8, *mut u8)> = Vec::new();
    let mut hits = 0;
    for _ in 0..50_000 {
        if live.len() < 500 && rng.below(2) == 0 || live.is_empty() {
            let size = random_size(&mut rng) % 512;
            let align = 1 << rng.below(4);
            let exact = size < SL * G - W && fast.heads[block_size(size) >> G_LOG2] != 0;
            hits += exact as usize;
            let (a, b) = unsafe { (fast.alloc(size, align), slow.alloc_slow(size, align)) };
            assert!(!a.is_null() && !b.is_null());
            assert_eq!(
                a as usize - base(&fast),
                b as usize - base(&slow),
                "same block for {size} bytes"
            );
            live.push((a, b));
        } else {
            let (a, b) = live.swap_remove(rng.below(live.len() as u64) as usize);
            unsafe { (fast.free(a), slow.free(b)) };
        }
    }
    assert!(hits > 10_000, "the fast path ran ({hits} times)");
    validate(&fast);
    validate(&slow);
    for class in 0..LISTS {
        let offset = |heap: &Heap<TestBackend>| match heap.heads[class] {
            0 => 0,
            head => head - base(heap),
        };
        assert_eq!(offset(&fast), offset(&slow), "list {class}");
    }
    assert_eq!(fast.rows, slow.rows);
    assert_eq!(fast.row_bits, slow.row_bits);
}

/// `class_of` (written with `leading_zeros` and no mask) agrees with the
/// two-level formula: the exact classes below `SL * G`, then row
/// `fl - G_LOG2 - SL_LOG2 + 1` and the `SL_LOG2` bits below the highest set
/// bit `fl`; classes never decrease with the size and stay below `LISTS`.
#[test]
fn class_of_matches_the_two_level_formula() {
    let reference = |size: usize| {
        if size < SL * G {
            size / G
        } else {
            let fl = usize::BITS - 1 - size.leading_zeros();
            ((fl - G_LOG2 - SL_LOG2 + 1) as usize) * SL + ((size >> (fl - SL_LOG2)) & (SL - 1))
        }
    };
    let mut sizes: Vec<usize> = (MIN_BLOCK..1 << 20).step_by(G).collect();
    for bit in 20..usize::BITS - 1 {
        for delta in [0, G, (1 << bit) / SL - G, (1 << bit) / SL, (1 << bit) - G] {
            sizes.push((1 << bit) + delta);
        }
    }
    sizes.push(MAX_SIZE & !(G - 1));
    sizes.push(block_size(MAX_SIZE) + MIN_BLOCK + MAX_ALIGN);
    let mut last = 0;
    for size in sizes {
        let class = class_of(size);
        assert_eq!(class, reference(size), "class of {size}");
        assert!(class >= last && class < LISTS, "class of {size}");
        last = class;
    }
}

/// The two shapes of `link` and `unlink` (straight paths in speed builds,
/// `connect` in size-optimized ones) build the same lists: two heaps over two equal
/// sets of blocks, one linking with each shape, unlinking the same blocks,
/// end with the same heads, bitmaps and list orders at every step.
#[test]
fn both_link_shapes_build_the_same_lists() {
    const BLOCKS: usize = 300;
    const STRIDE: usize = 2 * G;
    let mut rng = Rng(0x11d_5a9e);
    // Exact classes and ranged ones, with several sizes per ranged class so
    // the larger-head rule is exercised.
    let choices: Vec<usize> = [MIN_BLOCK, 3 * G, SL * G - G, SL * G, SL * G + G]
        .into_iter()
        .chain((0..4).map(|k| 4096 + k * G))
        .chain((0..4).map(|k| (1 << 20) + k * 4096))
        .collect();
    let sizes: Vec<usize> = (0..BLOCKS)
        .map(|_| choices[rng.below(choices.len() as u64) as usize])
        .collect();
    let memory = |sizes: &[usize]| {
        let words: &'static mut [usize] = std::vec![0; BLOCKS * STRIDE / W].leak();
        let base = words.as_mut_ptr() as usize;
        for (i, &size) in sizes.iter().enumerate() {
            unsafe { wr_at(base + i * STRIDE, HEADER, size | FREE) };
        }
        base
    };
    let (base_a, base_b) = (memory(&sizes), memory(&sizes));
    let empty = || Heap::new(unsafe { Arena::new(core::ptr::null_mut(), 0) });
    let (mut a, mut b) = (empty(), empty());
    let mut linked = [false; BLOCKS];
    let offset = |heap: &Heap<Arena>, base: usize, class: usize| {
        let mut order = Vec::new();
        let mut block = heap.heads[class];
        while block != 0 {
            order.push(block - base);
            block = unsafe { rd_at(block, NEXT) };
        }
        order
    };
    for step in 0..20_000 {
        let i = rng.below(BLOCKS as u64) as usize;
        let (block_a, block_b) = (base_a + i * STRIDE, base_b + i * STRIDE);
        unsafe {
            if linked[i] {
                a.unlink_split(block_a);
                b.unlink_shared(block_b);
            } else {
                a.link_split(block_a, sizes[i]);
                b.link_shared(block_b, sizes[i]);
            }
        }
        linked[i] = !linked[i];
        let class = class_of(sizes[i]);
        assert_eq!(
            offset(&a, base_a, class),
            offset(&b, base_b, class),
            "step {step}"
        );
        assert_eq!(a.rows, b.rows);
        assert_eq!(a.row_bits, b.row_bits);
    }
    for class in 0..LISTS {
        assert_eq!(offset(&a, base_a, class), offset(&b, base_b, class));
    }
    assert!(a.rows.count_ones() > 1, "several rows used");
}

/// A request finds a block of the next class up, all of whose blocks fit,
/// even when the request sits high in its own class (the search once
/// rounded up by a sixteenth of the size and skipped that class).
#[test]
fn search_takes_the_next_class_up() {
    let mut heap = Heap::new(TestBackend::new(1 << 20, 0));
    unsafe {
        // Class width at 2^16 is 2^16 / SL: a request near the top of one
        // class and a free block at the start of the next.
        let width = (1 << 16) / SL;
        let block = (1 << 16) + 3 * width;
        let request = block - G - W;
        let a = heap.alloc(block - W, 8);
        let guard = heap.alloc(16, 8);
        heap.free(a);
        let before = heap.backend().arena.remaining();
        assert_eq!(class_of(block_size(request)) + 1, class_of(block));
        let b = heap.alloc(request, 8);
        assert_eq!(b, a, "the free block of the next class is used");
        assert_eq!(heap.backend().arena.remaining(), before, "no growth");
        heap.free(b);
        heap.free(guard);
    }
    validate(&heap);
}

/// A request that starts a class takes the head of its own class (every
/// block there fits), not a block of a larger class and not fresh memory;
/// one within a class takes a fitting head of its own class.
#[test]
fn request_at_a_class_start_takes_its_own_head() {
    let mut heap = Heap::new(TestBackend::new(1 << 20, 0));
    unsafe {
        let room = heap.alloc(64 << 10, 8);
        heap.free(room);
        // Blocks: one at the top of the class below 4096, one starting the
        // class of 4096, one in the next class up, separated by used guards.
        let below = heap.alloc(4096 - G - W, 8);
        let g1 = heap.alloc(16, 8);
        let start = heap.alloc(4096 - W, 8);
        let g2 = heap.alloc(16, 8);
        let above = heap.alloc(4096 + 4096 / SL - W, 8);
        let g3 = heap.alloc(16, 8);
        assert_eq!(class_of(4096 - 1), class_of(4096 - G));
        assert_eq!(class_of(4096 - 1) + 1, class_of(4096));
        assert_eq!(class_of(4096) + 1, class_of(4096 + 4096 / SL));
        heap.free(above);
        heap.free(below);
        heap.free(start);
        let before = heap.backend().arena.remaining();
        let again = heap.alloc(4096 - W, 8);
        assert_eq!(again, start, "the own class's head");
        // A size inside a class (not its start): the head of that class is
        // checked first and fits.
        assert_eq!(class_of(4096 - G - 1), class_of(4096 - G));
        let within = heap.alloc(4096 - G - W, 8);
        assert_eq!(within, below, "a fitting head of the own class");
        assert_eq!(heap.backend().arena.remaining(), before, "no growth");
        for ptr in [again, within, g1, g2, g3] {
            heap.free(ptr);
        }
    }
    validate(&heap);
}

/// A freed block no larger than the head of its list goes second, so the
/// head stays the larger one; a larger block becomes the head.
#[test]
fn list_head_stays_the_larger_block() {
    let mut heap = Heap::new(TestBackend::new(1 << 20, 0));
    unsafe {
        // One free region first, so the blocks below are carved from it with
        // their exact sizes (growth rounds them up otherwise).
        let room = heap.alloc(64 << 10, 8);
        heap.free(room);
        // Three blocks of one class (sizes within 1/SL of each other),
        // separated by used guards so they do not merge.
        let big = heap.alloc(4096 + G, 8);
        let g1 = heap.alloc(16, 8);
        let small = heap.alloc(4096, 8);
        let g2 = heap.alloc(16, 8);
        let bigger = heap.alloc(4096 + 2 * G, 8);
        let g3 = heap.alloc(16, 8);
        let class = class_of(block_size(4096));
        for ptr in [big, small, bigger] {
            assert_eq!(class_of(heap.usable_size(ptr) + W), class);
        }
        heap.free(big);
        heap.free(small);
        assert_eq!(
            heap.heads[class],
            big as usize - PAYLOAD,
            "the smaller goes second"
        );
        heap.free(bigger);
        assert_eq!(
            heap.heads[class],
            bigger as usize - PAYLOAD,
            "a larger one leads"
        );
        validate(&heap);
        // The own-class check now serves a request the old head would not.
        let again = heap.alloc(4096 + 2 * G, 8);
        assert_eq!(again, bigger);
        for ptr in [again, g1, g2, g3] {
            heap.free(ptr);
        }
    }
    validate(&heap);
}

#[test]
fn buffer_grows_in_place_at_the_top() {
    let mut heap = Heap::new(TestBackend::new(8 << 20, 0));
    unsafe {
        let small = heap.alloc(24, 8);
        let mut buffer = heap.alloc(65536, 8);
        let first = buffer;
        for step in 2..=64 {
            buffer = heap.realloc(buffer, layout((step - 1) * 65536, 8), step * 65536);
            assert_eq!(buffer, first, "grew in place");
        }
        let used = (8 << 20) - heap.backend().arena.remaining();
        assert!(
            used <= 64 * 65536 + 256,
            "used {used} bytes for a 4 MiB buffer"
        );
        heap.free(small);
        heap.free(buffer);
    }
    validate(&heap);
}

#[test]
fn realloc_absorbs_a_free_neighbour_and_shrinks_in_place() {
    let mut heap = Heap::new(TestBackend::new(1 << 20, 0));
    unsafe {
        let a = heap.alloc(100, 8);
        let b = heap.alloc(1000, 8);
        let c = heap.alloc(100, 8);
        heap.free(b);
        assert_eq!(heap.realloc(a, layout(100, 8), 900), a);
        assert_eq!(heap.realloc(a, layout(900, 8), 40), a);
        let d = heap.alloc(500, 8);
        assert!(d > a && d < c, "the trimmed tail is reused");
        heap.free(a);
        heap.free(c);
        heap.free(d);
    }
    validate(&heap);
}

#[test]
fn large_alignments() {
    let mut heap = Heap::new(TestBackend::new(4 << 20, 0));
    unsafe {
        let mut blocks = Vec::new();
        for (i, align) in [16usize, 64, 4096, 65536, 65536, 4096]
            .into_iter()
            .enumerate()
        {
            let ptr = heap.alloc(i * 100, align);
            assert!(!ptr.is_null());
            assert_eq!(ptr as usize % align, 0);
            blocks.push(ptr);
            validate(&heap);
        }
        for ptr in blocks {
            heap.free(ptr);
        }
    }
    validate(&heap);
}

#[test]
fn zero_huge_and_exhausted_requests() {
    let mut heap = Heap::new(TestBackend::new(1 << 20, 0));
    unsafe {
        let a = heap.alloc(0, 1);
        let b = heap.alloc(0, 1);
        assert!(!a.is_null() && !b.is_null() && a != b);
        assert!(heap.alloc(usize::MAX, 1).is_null());
        assert!(heap.alloc(usize::MAX / 2 + 1, 8).is_null());
        assert!(heap.alloc(isize::MAX as usize - 64, 8).is_null());
        assert!(heap.alloc(8, 1 << (usize::BITS - 1)).is_null());
        assert!(heap.alloc(2 << 20, 8).is_null(), "more than the arena");
        assert!(heap.realloc(a, layout(0, 1), 2 << 20).is_null());
        assert!(heap.realloc(a, layout(0, 1), usize::MAX).is_null());
        heap.free(a);
        heap.free(b);
    }
    validate(&heap);
}

#[test]
fn threads_share_the_locked_allocator() {
    let memory: &'static mut [u64] = std::vec![0u64; (16 << 20) / 8].leak();
    let alloc = Allocator::new(unsafe { Arena::new(memory.as_mut_ptr().cast(), 16 << 20) });
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let alloc = &alloc;
            scope.spawn(move || {
                let mut rng = Rng(0x7777 + t);
                let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
                for _ in 0..50_000 {
                    if rng.below(2) == 0 && live.len() < 500 || live.is_empty() {
                        let layout =
                            Layout::from_size_align(random_size(&mut rng), random_align(&mut rng))
                                .unwrap();
                        let ptr = unsafe { alloc.alloc(layout) };
                        assert!(!ptr.is_null());
                        assert_eq!(ptr as usize % layout.align(), 0);
                        let tag = rng.next() as u8;
                        unsafe { ptr.write_bytes(tag, layout.size()) };
                        live.push((ptr, layout, tag));
                    } else {
                        let i = rng.below(live.len() as u64) as usize;
                        let (ptr, layout, tag) = live.swap_remove(i);
                        let bytes = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
                        assert!(bytes.iter().all(|&b| b == tag), "another thread wrote here");
                        if rng.below(3) == 0 {
                            let size = random_size(&mut rng);
                            let moved = unsafe { alloc.realloc(ptr, layout, size) };
                            assert!(!moved.is_null());
                            let keep = size.min(layout.size());
                            let bytes = unsafe { std::slice::from_raw_parts(moved, keep) };
                            assert!(bytes.iter().all(|&b| b == tag));
                            unsafe { alloc.dealloc(moved, layout) };
                        } else {
                            unsafe { alloc.dealloc(ptr, layout) };
                        }
                    }
                }
                for (ptr, layout, _) in live {
                    unsafe { alloc.dealloc(ptr, layout) };
                }
            });
        }
    });
    // Everything was freed: the whole arena used so far is one free block.
    alloc.with(|heap| {
        let blocks: usize = (0..LISTS).filter(|&c| heap.heads[c] != 0).count();
        assert_eq!(blocks, 1);
    });
}

#[test]
fn c_functions() {
    use crate::c_abi::*;
    let memory: &'static mut [u64] = std::vec![0u64; (1 << 20) / 8].leak();
    let heap = Allocator::new(unsafe { Arena::new(memory.as_mut_ptr().cast(), 1 << 20) });
    unsafe {
        let a = malloc_in(&heap, 10);
        assert_eq!(a as usize % MALLOC_ALIGN, 0);
        a.write_bytes(0xab, 10);
        free_in(&heap, a);
        let z = calloc_in(&heap, 10, 10);
        assert!(std::slice::from_raw_parts(z, 100).iter().all(|&b| b == 0));
        assert!(calloc_in(&heap, usize::MAX, 2).is_null());
        let r = realloc_in(&heap, core::ptr::null_mut(), 5);
        r.write_bytes(7, 5);
        let r = realloc_in(&heap, r, 5000);
        assert_eq!(std::slice::from_raw_parts(r, 5), &[7; 5]);
        assert!(realloc_in(&heap, r, 0).is_null());
        assert!(aligned_alloc_in(&heap, 24, 10).is_null());
        let p = aligned_alloc_in(&heap, 4096, 10);
        assert_eq!(p as usize % 4096, 0);
        free_in(&heap, p);
        free_in(&heap, z);
        free_in(&heap, core::ptr::null_mut());
    }
}

/// FNV-1a over the offsets (from the arena's start) of every block a fixed
/// random sequence of `alloc`, `free` and `realloc` calls returns (all sizes,
/// alignments up to 64 KiB, growth at the top and in new regions, arenas
/// running full), and of every list head at the end.
fn block_choice_digest() -> u64 {
    let mut digest = 0xcbf2_9ce4_8422_2325u64;
    let mut mix = |value: usize| {
        for byte in (value as u64).to_le_bytes() {
            digest = (digest ^ byte as u64).wrapping_mul(0x100_0000_01b3);
        }
    };
    for (seed, bytes, gap) in [(1u64, 8 << 20, 0), (2, 1 << 20, 0), (3, 16 << 20, 64)] {
        let mut heap = Heap::new(TestBackend::aligned(bytes, gap));
        let base = heap.backend.arena.next as usize;
        let offset = |ptr: *mut u8| match ptr as usize {
            0 => usize::MAX,
            p => p - base,
        };
        let mut rng = Rng(0xc401_ce00 + seed);
        let mut live: Vec<(*mut u8, Layout)> = Vec::new();
        for _ in 0..60_000 {
            let choice = rng.below(100);
            if choice < 45 && live.len() < 2000 || live.is_empty() {
                let layout = layout(random_size(&mut rng), random_align(&mut rng));
                let ptr = unsafe { heap.alloc(layout.size(), layout.align()) };
                mix(offset(ptr));
                if !ptr.is_null() {
                    live.push((ptr, layout));
                }
            } else if choice < 80 {
                let (ptr, _) = live.swap_remove(rng.below(live.len() as u64) as usize);
                unsafe { heap.free(ptr) };
            } else {
                let i = rng.below(live.len() as u64) as usize;
                let (ptr, old) = live[i];
                let new_size = match rng.below(3) {
                    0 => old.size() / 2,
                    1 => old.size() * 2 + 8,
                    _ => random_size(&mut rng),
                };
                let moved = unsafe { heap.realloc(ptr, old, new_size) };
                mix(offset(moved));
                if !moved.is_null() {
                    live[i] = (moved, layout(new_size, old.align()));
                }
            }
        }
        validate(&heap);
        for class in 0..LISTS {
            mix(offset(ptr::with_exposed_provenance_mut(heap.heads[class])));
        }
    }
    digest
}

/// Speed builds and size-optimized builds (opt-level "s" or "z", see
/// `build.rs`; run the tests with `CARGO_PROFILE_TEST_OPT_LEVEL=z` for the
/// latter) run different code for the same algorithm: both must choose the
/// very same blocks, so the fuel and heap-efficiency figures measured on the
/// speed build hold for the size build too. The digest is the speed build's
/// (64-bit targets); an intended change of the algorithm changes it in both.
#[test]
#[cfg(target_pointer_width = "64")]
fn size_and_speed_builds_choose_the_same_blocks() {
    assert_eq!(
        block_choice_digest(),
        0xeb06_b798_2da1_7fdd,
        "digest of the blocks chosen"
    );
}
