//! The project manifest: page counts and reservations per memory.
//!
//! Read from `wasm-mem.toml`, or from `[package.metadata.wasm-mem]` in a
//! `Cargo.toml`. A `[memory]` table configures memory 0; `[memory.N]` tables
//! configure memory N:
//!
//! ```toml
//! [memory]            # memory 0
//! pages = 16          # fixed size: min = max = 16 pages
//! stack-size = "1MiB" # reservation counted by `check` when the module has no stack pointer
//!
//! [memory.1]
//! min-pages = 1
//! max-pages = 4       # or "none" for no maximum
//! heap-size = 65536
//! ```
//!
//! Keys: `pages`, `min-pages`, `max-pages` (page counts), `stack-size`,
//! `heap-size` (bytes: an integer, or a string with a `B`, `KiB`, `MiB` or
//! `GiB` suffix). Unknown keys are errors, so a typo never goes unnoticed.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Value;

/// The file name looked up in the current directory.
pub const FILE_NAME: &str = "wasm-mem.toml";

/// A requested maximum: a page count or explicitly none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxPages {
    /// At most this many pages.
    Pages(u64),
    /// No maximum (growable without bound).
    Unbounded,
}

/// Settings for one memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemorySettings {
    /// Fixed size: min = max = pages.
    pub pages: Option<u64>,
    /// Minimum (initial) pages.
    pub min_pages: Option<u64>,
    /// Maximum pages.
    pub max_pages: Option<MaxPages>,
    /// Stack reservation in bytes.
    pub stack_size: Option<u64>,
    /// Heap reservation in bytes.
    pub heap_size: Option<u64>,
}

impl MemorySettings {
    /// The minimum this manifest asks for (`pages` or `min-pages`).
    pub fn min(&self) -> Option<u64> {
        self.pages.or(self.min_pages)
    }

    /// The maximum this manifest asks for (`pages` or `max-pages`).
    pub fn max(&self) -> Option<MaxPages> {
        self.pages.map(MaxPages::Pages).or(self.max_pages)
    }
}

/// A parsed manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Where it was read from.
    pub path: Option<PathBuf>,
    /// Settings per memory index.
    pub memories: BTreeMap<u32, MemorySettings>,
}

impl Manifest {
    /// Settings of memory `index` (empty when the manifest says nothing).
    pub fn memory(&self, index: u32) -> MemorySettings {
        self.memories.get(&index).cloned().unwrap_or_default()
    }

    /// Read a manifest file: `Cargo.toml` files use `[package.metadata.wasm-mem]`,
    /// any other file is a `wasm-mem.toml`.
    pub fn load(path: &Path) -> Result<Manifest> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Manifest {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let is_cargo = path.file_name().is_some_and(|n| n == "Cargo.toml");
        let mut manifest = Manifest::parse(&text, is_cargo).map_err(|message| Error::Manifest {
            path: shown,
            message,
        })?;
        manifest.path = Some(path.to_path_buf());
        Ok(manifest)
    }

    /// Find the manifest for `dir`: `wasm-mem.toml`, else a `Cargo.toml` that
    /// has `[package.metadata.wasm-mem]`.
    pub fn discover(dir: &Path) -> Result<Option<Manifest>> {
        let own = dir.join(FILE_NAME);
        if own.is_file() {
            return Manifest::load(&own).map(Some);
        }
        let cargo = dir.join("Cargo.toml");
        if cargo.is_file() {
            let manifest = Manifest::load(&cargo)?;
            if !manifest.memories.is_empty() {
                return Ok(Some(manifest));
            }
        }
        Ok(None)
    }

    /// Parse manifest text. `cargo` selects the `Cargo.toml` form.
    pub fn parse(text: &str, cargo: bool) -> std::result::Result<Manifest, String> {
        let root: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let table = if cargo {
            match root
                .get("package")
                .and_then(|p| p.get("metadata"))
                .and_then(|m| m.get("wasm-mem"))
            {
                Some(Value::Table(t)) => t.clone(),
                Some(_) => return Err("[package.metadata.wasm-mem] must be a table".into()),
                None => return Ok(Manifest::default()),
            }
        } else {
            root
        };
        let mut manifest = Manifest::default();
        for (key, value) in &table {
            if key != "memory" {
                return Err(format!("unknown key `{key}` (expected a [memory] table)"));
            }
            let Value::Table(memory) = value else {
                return Err("`memory` must be a table".into());
            };
            let mut own = toml::Table::new();
            for (key, value) in memory {
                if let Ok(index) = key.parse::<u32>() {
                    let Value::Table(t) = value else {
                        return Err(format!("`memory.{index}` must be a table"));
                    };
                    let settings = settings(t, &format!("memory.{index}"))?;
                    manifest.memories.insert(index, settings);
                } else {
                    own.insert(key.clone(), value.clone());
                }
            }
            if !own.is_empty() {
                let settings = settings(&own, "memory")?;
                if manifest.memories.contains_key(&0) {
                    return Err("memory 0 is configured twice ([memory] and [memory.0])".into());
                }
                manifest.memories.insert(0, settings);
            }
        }
        Ok(manifest)
    }
}

fn settings(table: &toml::Table, at: &str) -> std::result::Result<MemorySettings, String> {
    let mut s = MemorySettings::default();
    for (key, value) in table {
        let here = format!("{at}.{key}");
        match key.as_str() {
            "pages" => s.pages = Some(count(value, &here)?),
            "min-pages" => s.min_pages = Some(count(value, &here)?),
            "max-pages" => {
                s.max_pages = Some(match value {
                    Value::String(v) if v == "none" => MaxPages::Unbounded,
                    _ => MaxPages::Pages(count(value, &here)?),
                })
            }
            "stack-size" => s.stack_size = Some(bytes(value, &here)?),
            "heap-size" => s.heap_size = Some(bytes(value, &here)?),
            _ => {
                return Err(format!(
                "unknown key `{here}` (known: pages, min-pages, max-pages, stack-size, heap-size)"
            ))
            }
        }
    }
    if s.pages.is_some() && (s.min_pages.is_some() || s.max_pages.is_some()) {
        return Err(format!(
            "`{at}`: `pages` fixes the size; do not combine it with `min-pages`/`max-pages`"
        ));
    }
    Ok(s)
}

fn count(value: &Value, at: &str) -> std::result::Result<u64, String> {
    match value {
        Value::Integer(v) if *v >= 0 => Ok(*v as u64),
        _ => Err(format!("`{at}` must be a non-negative integer page count")),
    }
}

fn bytes(value: &Value, at: &str) -> std::result::Result<u64, String> {
    match value {
        Value::Integer(v) if *v >= 0 => Ok(*v as u64),
        Value::String(text) => parse_size(text).ok_or_else(|| {
            format!("`{at}`: cannot read {text:?} as a size (e.g. 65536, \"64KiB\", \"1MiB\")")
        }),
        _ => Err(format!("`{at}` must be a size in bytes")),
    }
}

/// Parse a byte size: `65536`, `64KiB`, `1MiB`, `2GiB`, `100B`.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_tables() {
        let m = Manifest::parse(
            "[memory]\npages = 4\nstack-size = \"64KiB\"\n[memory.2]\nmin-pages = 1\nmax-pages = \"none\"\n",
            false,
        )
        .unwrap();
        assert_eq!(m.memory(0).min(), Some(4));
        assert_eq!(m.memory(0).max(), Some(MaxPages::Pages(4)));
        assert_eq!(m.memory(0).stack_size, Some(65536));
        assert_eq!(m.memory(2).max(), Some(MaxPages::Unbounded));
        assert_eq!(m.memory(1), MemorySettings::default());
    }

    #[test]
    fn cargo_metadata() {
        let m = Manifest::parse(
            "[package]\nname = \"x\"\n[package.metadata.wasm-mem.memory]\nmax-pages = 9\n",
            true,
        )
        .unwrap();
        assert_eq!(m.memory(0).max(), Some(MaxPages::Pages(9)));
        let none = Manifest::parse("[package]\nname = \"x\"\n", true).unwrap();
        assert!(none.memories.is_empty());
    }

    #[test]
    fn rejects_typos_and_conflicts() {
        assert!(Manifest::parse("[memory]\nmin_pages = 1\n", false)
            .unwrap_err()
            .contains("unknown key `memory.min_pages`"));
        assert!(Manifest::parse("[memory]\npages = 1\nmax-pages = 2\n", false).is_err());
        assert!(Manifest::parse("[memory]\npages = -1\n", false).is_err());
        assert!(Manifest::parse("[memory]\nheap-size = \"1 parsec\"\n", false).is_err());
        assert!(Manifest::parse("[memry]\n", false).is_err());
        assert!(Manifest::parse("[memory]\npages = 1\n[memory.0]\npages = 2\n", false).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("3 KiB"), Some(3072));
        assert_eq!(parse_size("99999999999GiB"), None);
        assert_eq!(parse_size("KiB"), None);
    }
}
