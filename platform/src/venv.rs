//! Where `scripts/setup` installs the PyPI packages whose files the services open (models,
//! libraries): the project's `.venv`. One place finds them, so every model looks the same
//! way and an error names the same folder.

use std::path::PathBuf;

use crate::nats_server::repo_root;

/// The `site-packages` folders of the project's `.venv` (one per Python there), where
/// `scripts/setup` installs its PyPI packages; never empty: with none yet, the one an error
/// should name (`.venv/lib/python3/site-packages`).
pub fn site_packages() -> Vec<PathBuf> {
    let lib = repo_root().join(".venv/lib");
    let found: Vec<PathBuf> = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| python.path().join("site-packages"))
        .filter(|packages| packages.is_dir())
        .collect();
    if found.is_empty() {
        vec![lib.join("python3/site-packages")]
    } else {
        found
    }
}

/// `relative` (a path inside `site-packages`, such as a package's model file) in the first
/// `site-packages` folder that has it; if none has, where it would be in the first, so an
/// error can name it.
pub fn installed(relative: &str) -> PathBuf {
    let candidates: Vec<PathBuf> = site_packages()
        .into_iter()
        .map(|packages| packages.join(relative))
        .collect();
    candidates
        .iter()
        .find(|path| path.exists())
        .unwrap_or(&candidates[0])
        .clone()
}
