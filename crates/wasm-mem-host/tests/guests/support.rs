//! Builds the guest programs in `tests/guests/wasi-guest` for wasm32-wasip1,
//! once per test binary, into `<target dir>/wasm-mem-guests`. Shared by the
//! wasm-mem-host and wasm-mem-cli tests (`#[path]`-included).
//!
//! When the wasm32-wasip1 target is not installed the guests are skipped with
//! a printed note (`rustup target add wasm32-wasip1` installs it); a build
//! failure with the target installed is a test failure.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The built guests.
pub struct Guests {
    /// The WASI command (`wasi-guest [MIB [EXIT]]`).
    pub command: PathBuf,
    /// The reactor exporting `guest_malloc`/`guest_free`/`byte_sum`/`string_length`.
    pub reactor: PathBuf,
}

/// The guests, or `None` (with a note on stderr) without the wasm32-wasip1 target.
pub fn guests() -> Option<&'static Guests> {
    static BUILT: OnceLock<Option<Guests>> = OnceLock::new();
    let built = BUILT.get_or_init(build).as_ref();
    if built.is_none() {
        eprintln!(
            "note: skipping the Rust-built WASI guest: the wasm32-wasip1 target is not installed \
             (rustup target add wasm32-wasip1)"
        );
    }
    built
}

fn target_installed() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", "wasm32-wasip1"])
        .output()
    else {
        return false;
    };
    out.status.success() && Path::new(String::from_utf8_lossy(&out.stdout).trim()).is_dir()
}

fn target_dir() -> PathBuf {
    // The test binary lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("target directory");
    target.join("wasm-mem-guests")
}

fn build() -> Option<Guests> {
    if !target_installed() {
        return None;
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../wasm-mem-host/tests/guests/wasi-guest/Cargo.toml");
    let dir = target_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .arg("build")
        .arg("--quiet")
        .arg("--release")
        .args(["--target", "wasm32-wasip1"])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the wasm32-wasip1 guest failed");
    let out = dir.join("wasm32-wasip1/release");
    Some(Guests {
        command: out.join("wasi-guest.wasm"),
        reactor: out.join("wasi_guest_lib.wasm"),
    })
}
