//! The SVG memory map parses as SVG and renders to a picture with content.

use wasm_mem::manifest::Manifest;
use wasm_mem::ModuleInfo;

fn render(svg: &str) -> resvg::tiny_skia::Pixmap {
    let mut options = resvg::usvg::Options::default();
    options.fontdb_mut().load_system_fonts();
    let tree = resvg::usvg::Tree::from_str(svg, &options).expect("the map parses as SVG");
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    pixmap
}

fn map_of(wat_path: &str) -> (String, resvg::tiny_skia::Pixmap) {
    let bytes = wat::parse_file(wat_path).unwrap();
    let info = ModuleInfo::read(&bytes).unwrap();
    let svg = wasm_mem::svg::memory_map(&info, &bytes, &Manifest::default());
    let pixmap = render(&svg);
    if let Ok(dir) = std::env::var("WASM_MEM_SVG_PNG") {
        let name = std::path::Path::new(wat_path)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .to_string();
        pixmap.save_png(format!("{dir}/{name}.png")).unwrap();
    }
    (svg, pixmap)
}

/// Count pixels of exactly this colour.
fn pixels_of(pixmap: &resvg::tiny_skia::Pixmap, rgb: (u8, u8, u8)) -> usize {
    pixmap
        .pixels()
        .iter()
        .filter(|p| p.alpha() == 255 && (p.red(), p.green(), p.blue()) == rgb)
        .count()
}

fn non_white(pixmap: &resvg::tiny_skia::Pixmap) -> usize {
    pixmap
        .pixels()
        .iter()
        .filter(|p| (p.red(), p.green(), p.blue()) != (255, 255, 255))
        .count()
}

const DATA: (u8, u8, u8) = (0x1f, 0x4e, 0x9c);
const STACK: (u8, u8, u8) = (0xf2, 0x9d, 0x38);
const HEAP: (u8, u8, u8) = (0x8f, 0xd1, 0x8f);

#[test]
fn example_map_shows_data_stack_and_heap() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/app.wat");
    let (svg, pixmap) = map_of(path);
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains("memory 0: i32"));
    assert!(non_white(&pixmap) > 10_000, "the map is nearly blank");
    assert!(pixels_of(&pixmap, DATA) > 0, "no data drawn");
    assert!(pixels_of(&pixmap, STACK) > 100, "no stack drawn");
    assert!(pixels_of(&pixmap, HEAP) > 100, "no heap drawn");
}

#[test]
fn every_fixture_renders() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let (svg, pixmap) = map_of(path.to_str().unwrap());
        assert!(
            non_white(&pixmap) > 1000,
            "{}: nearly blank",
            path.display()
        );
        let info = ModuleInfo::read(&wat::parse_file(&path).unwrap()).unwrap();
        assert!(
            svg.matches(">memory ").count() >= info.memories.len(),
            "{}: a panel per memory",
            path.display()
        );
    }
}

#[test]
fn multi_memory_map_has_a_panel_per_memory() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/multi.wat");
    let (svg, _) = map_of(path);
    for i in 0..4 {
        assert!(
            svg.contains(&format!(">memory {i}: ")),
            "no panel for memory {i}"
        );
    }
    assert!(svg.contains("imported env.shared_mem"));
    assert!(svg.contains("i64"));
}

/// Fuzz finding (smith_inspect): an 80-byte module with a few dozen large
/// memories drew 2,048 grid cells for each, a 1.26 MB SVG. The cells are now
/// shared out and at most 64 memories get a panel.
#[test]
fn many_memories_give_a_bounded_map() {
    for count in [30usize, 300] {
        let memories: String = (0..count)
            .map(|i| format!("(memory $m{i} 65536)"))
            .collect();
        let module = wat::parse_str(format!("(module {memories})")).unwrap();
        let info = wasm_mem::ModuleInfo::read(&module).unwrap();
        let svg = wasm_mem::svg::memory_map(&info, &module, &Default::default());
        assert!(
            svg.len() < 1_000_000,
            "{count} memories: {} bytes",
            svg.len()
        );
        let panels = svg.matches("page grid:").count();
        assert_eq!(panels, count.min(64), "{count} memories");
        assert_eq!(svg.contains("more memories, not drawn"), count > 64);
    }
}
