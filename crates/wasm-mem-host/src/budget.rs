//! Page budgets per memory.
//!
//! A budget caps how many pages (of the memory's own page size) a memory may
//! reach while the module runs. It comes from the same manifest as `pages`
//! and `check` (`max-pages`, or `pages` for a fixed size, of `[memory]` /
//! `[memory.N]`) or from the caller; the caller's value wins.

use std::collections::BTreeMap;
use wasm_mem::manifest::{Manifest, MaxPages};

/// Page budgets by memory index. Memories without an entry are unbounded
/// (beyond their own declared maximum).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Budget {
    pages: BTreeMap<u32, u64>,
}

impl Budget {
    /// No budget at all.
    pub fn none() -> Budget {
        Budget::default()
    }

    /// The maximums a manifest sets (`max-pages`, or `pages`).
    pub fn from_manifest(manifest: &Manifest) -> Budget {
        let mut budget = Budget::default();
        for (index, settings) in &manifest.memories {
            if let Some(MaxPages::Pages(pages)) = settings.max() {
                budget.pages.insert(*index, pages);
            }
        }
        budget
    }

    /// Set memory `index`'s budget to `pages` (replacing any other source).
    pub fn set(&mut self, index: u32, pages: u64) -> &mut Budget {
        self.pages.insert(index, pages);
        self
    }

    /// Builder form of [`Budget::set`].
    pub fn with(mut self, index: u32, pages: u64) -> Budget {
        self.set(index, pages);
        self
    }

    /// Budget of memory `index`, in pages.
    pub fn get(&self, index: u32) -> Option<u64> {
        self.pages.get(&index).copied()
    }

    /// All budgets, by memory index.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.pages.iter().map(|(i, p)| (*i, *p))
    }

    /// `true` when no memory has a budget.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }
}
