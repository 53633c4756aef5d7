//! Helpers shared by the integration tests of this crate.

use std::path::{Path, PathBuf};

/// The real-world modules of `WASM_MEM_CORPUS`, else ~/.cache/wasm-mem/corpus
/// (fetched with `../shared/corpus/fetch.sh DIR`), sorted; `None`, after a
/// note, when the directory is absent.
pub fn corpus_modules() -> Option<Vec<PathBuf>> {
    let dir = std::env::var_os("WASM_MEM_CORPUS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/wasm-mem/corpus")));
    let Some(dir) = dir.filter(|d| d.is_dir()) else {
        eprintln!(
            "note: no corpus directory; run ../shared/corpus/fetch.sh ~/.cache/wasm-mem/corpus"
        );
        return None;
    };
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    paths.sort();
    Some(paths)
}
