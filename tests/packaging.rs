//! The Debian package's recipe: `[package.metadata.deb]` in Cargo.toml and
//! `packaging/build-deb`, which generates part of what it ships. Building
//! the .deb takes a release build, too slow for the suite (README.md,
//! "Debian package", has the command); this checks the recipe instead, with
//! the script's `stage` step run on the test binary:
//!
//! - every asset's source is in the repository or staged by the script,
//!   and everything staged is shipped;
//! - the units shipped are those of systemd/, all of them, changed only in
//!   the binary's path (/usr/bin, not /usr/local/bin);
//! - the completions and man pages shipped are what the binary generates;
//! - the paths, the sysusers file, the maintainer scripts and the systemd
//!   options are those README.md documents.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where Cargo.toml takes the script's output from.
const STAGED: &str = "target/deb-assets/";
/// Where cargo-deb takes the release binary from (it substitutes the real
/// target directory).
const BUILT: &str = "target/release/";
const HAND_INSTALLED_BINARY: &str = "/usr/local/bin/chatkeep";
const PACKAGED_BINARY: &str = "/usr/bin/chatkeep";
const UNIT_DIR: &str = "usr/lib/systemd/system/";
const EXAMPLE_CONFIG: &str = "usr/share/doc/chatkeep/examples/config.example.toml";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One `[source, dest, mode]` entry of `assets`.
#[derive(Debug)]
struct Asset {
    source: String,
    dest: String,
    mode: String,
}

impl Asset {
    /// The installed path of the file `name` this asset ships: a `dest`
    /// ending in `/` is a directory.
    fn installed(&self, name: &str) -> String {
        if self.dest.ends_with('/') {
            format!("{}{name}", self.dest)
        } else {
            self.dest.clone()
        }
    }
}

fn deb_metadata() -> toml::Table {
    let text = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("Cargo.toml has [package.metadata.deb]")
        .clone()
}

fn assets(deb: &toml::Table) -> Vec<Asset> {
    deb["assets"]
        .as_array()
        .expect("assets is an array")
        .iter()
        .map(|entry| {
            let fields: Vec<&str> = entry
                .as_array()
                .unwrap_or_else(|| panic!("asset {entry} is not [source, dest, mode]"))
                .iter()
                .map(|v| v.as_str().expect("asset fields are strings"))
                .collect();
            let [source, dest, mode] = fields[..] else {
                panic!("asset {entry} is not [source, dest, mode]");
            };
            Asset {
                source: source.to_owned(),
                dest: dest.to_owned(),
                mode: mode.to_owned(),
            }
        })
        .collect()
}

/// Runs `packaging/build-deb stage` with the test binary into a temporary
/// directory, as the real build does with the release binary.
fn staged() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .arg(repo().join("packaging/build-deb"))
        .arg("stage")
        .arg(env!("CARGO_BIN_EXE_chatkeep"))
        .arg(dir.path().join("deb-assets"))
        .env_remove("CHATKEEP_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    dir
}

fn text(out: &Output) -> String {
    format!(
        "{:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The files `source` names: one path, or a `*` in the file name.
fn matching(dir: &Path, source: &str) -> Vec<PathBuf> {
    let path = dir.join(source);
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    let Some((prefix, suffix)) = name.split_once('*') else {
        return if path.is_file() { vec![path] } else { Vec::new() };
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(path.parent().unwrap())
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    let n = p.file_name().unwrap().to_str().unwrap();
                    n.len() >= prefix.len() + suffix.len() && n.starts_with(prefix) && n.ends_with(suffix)
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Every installed path with the file it comes from (None for the binary
/// cargo-deb builds), resolved against the repository and the staging
/// directory `stage`.
fn installed_files(assets: &[Asset], stage: &Path) -> Vec<(String, Option<PathBuf>, String)> {
    let mut files = Vec::new();
    for asset in assets {
        if let Some(built) = asset.source.strip_prefix(BUILT) {
            assert_eq!(built, "chatkeep", "{asset:?}: the only binary is chatkeep");
            files.push((asset.installed(built), None, asset.mode.clone()));
            continue;
        }
        let found = match asset.source.strip_prefix(STAGED) {
            Some(staged) => matching(stage, staged),
            None => matching(repo(), &asset.source),
        };
        assert!(
            !found.is_empty(),
            "{asset:?}: no such file in the repository, nor staged by packaging/build-deb"
        );
        for file in found {
            let name = file.file_name().unwrap().to_str().unwrap().to_owned();
            files.push((asset.installed(&name), Some(file), asset.mode.clone()));
        }
    }
    files
}

fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut all = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(files_under(&path));
        } else {
            all.insert(path);
        }
    }
    all
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the package installs, with its source; panics if absent.
fn source_of<'a>(files: &'a [(String, Option<PathBuf>, String)], installed: &str) -> &'a Path {
    files
        .iter()
        .find(|(path, _, _)| path == installed)
        .and_then(|(_, source, _)| source.as_deref())
        .unwrap_or_else(|| panic!("the package does not ship {installed}: {files:#?}"))
}

#[test]
fn every_asset_exists_and_everything_staged_is_shipped() {
    let stage = staged();
    let assets = assets(&deb_metadata());
    let files = installed_files(&assets, &stage.path().join("deb-assets"));
    let shipped: BTreeSet<PathBuf> = files.iter().filter_map(|(_, source, _)| source.clone()).collect();
    for file in files_under(&stage.path().join("deb-assets")) {
        assert!(
            shipped.contains(&file),
            "{} is staged but no asset ships it",
            file.display()
        );
    }
    let mut seen = BTreeSet::new();
    for (path, _, mode) in &files {
        assert!(seen.insert(path.clone()), "{path} is shipped twice");
        let expected = if path == "usr/bin/chatkeep" { "755" } else { "644" };
        assert_eq!(mode, expected, "{path}");
        // No conffile: a working config needs the admin's personalities
        // and cookie (README.md, "Debian package").
        assert!(
            !path.starts_with("etc/"),
            "{path}: the package ships no file in /etc"
        );
    }
    assert!(seen.contains("usr/bin/chatkeep"), "{seen:?}");
}

#[test]
fn the_units_shipped_are_those_of_systemd_with_the_binary_in_usr_bin() {
    let stage = staged();
    let files = installed_files(&assets(&deb_metadata()), &stage.path().join("deb-assets"));
    let units: Vec<PathBuf> = files_under(&repo().join("systemd"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "service" || e == "timer"))
        .collect();
    assert!(units.len() >= 3, "{units:?}");
    for unit in units {
        let name = unit.file_name().unwrap().to_str().unwrap();
        let shipped = read(source_of(&files, &format!("{UNIT_DIR}{name}")));
        let original = read(&unit);
        assert_eq!(
            shipped,
            original.replace(HAND_INSTALLED_BINARY, PACKAGED_BINARY),
            "{name} differs from systemd/{name} in more than the binary's path"
        );
        assert!(!shipped.contains(HAND_INSTALLED_BINARY), "{name}");
        if name.ends_with(".service") {
            assert!(
                shipped.contains(&format!("\nExecStart={PACKAGED_BINARY} ")),
                "{name}: {shipped}"
            );
        }
    }
}

#[test]
fn completions_and_man_pages_shipped_are_generated_by_the_binary() {
    let stage = staged();
    let files = installed_files(&assets(&deb_metadata()), &stage.path().join("deb-assets"));
    let generate = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_chatkeep"))
            .args(args)
            .env_remove("CHATKEEP_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    for (shell, installed) in [
        ("bash", "usr/share/bash-completion/completions/chatkeep"),
        ("zsh", "usr/share/zsh/vendor-completions/_chatkeep"),
        ("fish", "usr/share/fish/vendor_completions.d/chatkeep.fish"),
    ] {
        assert_eq!(
            read(source_of(&files, installed)),
            generate(&["completions", shell]),
            "{installed}"
        );
    }

    let pages = tempfile::tempdir().unwrap();
    generate(&["man", "--dir", pages.path().to_str().unwrap()]);
    let generated = files_under(pages.path());
    assert!(generated.len() > 10, "{generated:?}");
    let shipped_pages: Vec<&String> = files
        .iter()
        .map(|(path, _, _)| path)
        .filter(|path| path.starts_with("usr/share/man/"))
        .collect();
    assert_eq!(shipped_pages.len(), generated.len(), "{shipped_pages:?}");
    for page in generated {
        let name = page.file_name().unwrap().to_str().unwrap();
        // cargo-deb gzips what goes under usr/share/man, as Debian policy asks.
        let shipped = source_of(&files, &format!("usr/share/man/man1/{name}"));
        assert_eq!(read(shipped), read(&page), "{name}");
    }
}

#[test]
fn paths_scripts_and_unit_options_are_as_documented() {
    let deb = deb_metadata();
    let stage = staged();
    let files = installed_files(&assets(&deb), &stage.path().join("deb-assets"));
    assert_eq!(
        source_of(&files, EXAMPLE_CONFIG),
        repo().join("config.example.toml")
    );
    // cargo-deb runs `systemd-sysusers <stem>.conf` for the source
    // `<stem>.sysusers`, so the stem must be the installed file's.
    assert_eq!(
        source_of(&files, "usr/lib/sysusers.d/chatkeep.conf"),
        repo().join("systemd/chatkeep.sysusers")
    );

    // Installed, neither enabled nor started: it needs a config and a cookie.
    let units = deb["systemd-units"]
        .as_table()
        .expect("systemd-units is one table");
    assert_eq!(units.get("enable").and_then(|v| v.as_bool()), Some(false));
    assert_eq!(units.get("start").and_then(|v| v.as_bool()), Some(false));
    assert!(
        units.get("unit-name").is_none(),
        "one entry for every unit: {units:?}"
    );

    let scripts = repo().join(deb["maintainer-scripts"].as_str().expect("maintainer-scripts"));
    for script in ["postinst", "postrm"] {
        let text = read(&scripts.join(script));
        // Where cargo-deb writes the sysusers and systemd steps.
        assert!(text.contains("\n#DEBHELPER#\n"), "{script}");
        assert!(text.starts_with("#!/bin/sh\n"), "{script}");
    }
    let postinst = read(&scripts.join("postinst"));
    let debhelper = postinst.find("#DEBHELPER#").unwrap();
    let etc = postinst
        .find("install -d -m 0750 -o root -g chatkeep /etc/chatkeep")
        .expect("postinst makes /etc/chatkeep");
    assert!(
        debhelper < etc,
        "the group must exist before /etc/chatkeep is given to it"
    );

    let readme = read(&repo().join("README.md"));
    for documented in [
        "packaging/build-deb",
        "dpkg -i target/debian/chatkeep_",
        &format!("/{EXAMPLE_CONFIG}"),
    ] {
        assert!(readme.contains(documented), "README.md does not say {documented}");
    }
}
