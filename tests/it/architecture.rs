//! The crates' modules depend on each other in one direction. A circle means neither module
//! can be understood, tested or moved without the other (api's `problem` once reached
//! `widget_api` for CORS, which reached `auth`, which reached `problem`; core's `config`
//! reached `webhooks` for a default, which reached `queue`, `telemetry` and `config` again).
//! The graph is read from the sources: a module names another by `crate::m`, `$crate::m`,
//! `use crate::{m, …}`, a name the crate root re-exports from `m` (`crate::Error` is
//! `error`'s), or a macro `m` defines.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Every `.rs` file under `path`, concatenated (a module's submodules are part of it).
fn read_tree(path: &Path) -> String {
    if path.is_file() {
        return std::fs::read_to_string(path).unwrap();
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries.iter().map(|p| read_tree(p)).collect()
}

/// The top-level modules of the crate at `crate_dir` and the modules each one names.
fn module_graph(crate_dir: &str) -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(crate_dir)
        .join("src");
    let mut sources = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap();
        let module = name.strip_suffix(".rs").unwrap_or(name).to_owned();
        if module == "lib" || module == "main" || module == "bin" {
            continue;
        }
        let text = read_tree(&path);
        sources
            .entry(module)
            .and_modify(|t: &mut String| t.push_str(&text))
            .or_insert(text);
    }
    // Names the crate root re-exports (`pub use error::{Error, Result};`) stand for their
    // module; macros stand for the module that defines them.
    let root = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let mut alias: BTreeMap<String, String> = BTreeMap::new();
    for line in root.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let module = ident(rest);
        let names = rest[module.len()..].trim_start_matches("::");
        let names = names.trim_start_matches('{');
        for name in names.split(',').map(|n| ident(n.trim())) {
            if !name.is_empty() {
                alias.insert(name, module.clone());
            }
        }
    }
    let mut macros: BTreeMap<String, String> = BTreeMap::new();
    for (module, text) in &sources {
        for (at, _) in text.match_indices("macro_rules! ") {
            macros.insert(ident(&text[at + "macro_rules! ".len()..]), module.clone());
        }
    }
    sources
        .iter()
        .map(|(module, text)| {
            let mut named = BTreeSet::new();
            for (at, _) in text.match_indices("crate::") {
                let rest = &text[at + "crate::".len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    let group = &group[..group.find('}').unwrap_or(group.len())];
                    named.extend(group.split(',').map(|part| ident(part.trim())));
                } else {
                    named.insert(ident(rest));
                }
            }
            for (name, home) in &macros {
                if text.contains(&format!("{name}!")) {
                    named.insert(home.clone());
                }
            }
            let mut named: BTreeSet<String> = named
                .into_iter()
                .map(|n| alias.get(&n).cloned().unwrap_or(n))
                .collect();
            named.retain(|m| m != module && sources.contains_key(m));
            (module.clone(), named)
        })
        .collect()
}

/// The first circle found, as `a -> b -> … -> a`.
fn circle(graph: &Graph) -> Option<String> {
    // Depth-first, with the path so far: a module met again on its own path closes a circle.
    fn visit(
        graph: &Graph,
        module: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if let Some(start) = path.iter().position(|m| m == module) {
            return Some(format!("{} -> {module}", path[start..].join(" -> ")));
        }
        if !done.insert(module.to_owned()) {
            return None;
        }
        path.push(module.to_owned());
        for next in &graph[module] {
            if let Some(found) = visit(graph, next, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(graph, module, &mut Vec::new(), &mut done))
}

#[test]
fn the_reading_finds_circles_and_edges() {
    let made_up: Graph = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(m, n)| (m.to_owned(), BTreeSet::from([n.to_owned()])))
        .collect();
    assert_eq!(circle(&made_up).as_deref(), Some("a -> b -> c -> a"));
    let api = module_graph("api");
    assert!(api["widget_api"].contains("cors"), "{api:?}");
    assert!(
        api["calls"].contains("problem"),
        "problems! is problem's: {api:?}"
    );
    let core = module_graph("core");
    assert!(
        core["calls"].contains("error"),
        "crate::Result is error's: {core:?}"
    );
    assert!(core["placing"].contains("calls"), "{core:?}");
    assert!(
        core["store"].contains("roles"),
        "submodules count: {core:?}"
    );
}

#[test]
fn api_modules_depend_on_each_other_without_circles() {
    assert_eq!(circle(&module_graph("api")), None);
}

#[test]
fn core_modules_depend_on_each_other_without_circles() {
    assert_eq!(circle(&module_graph("core")), None);
}
