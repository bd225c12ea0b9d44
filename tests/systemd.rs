//! The files in `systemd/`: `systemd-analyze verify` accepts every unit
//! without a warning, `systemd-analyze security --offline=true` rates every
//! service at an exposure of 2.0 or less, every service denies link-local
//! (cloud metadata) addresses and nothing else, and the sysusers file
//! creates the user the units run as.
//!
//! These need `systemd-analyze` and `systemd-sysusers`, from Debian's
//! `systemd` package (`.ci/run` installs it). Without them the tests fail
//! rather than skip, so a unit is never shipped unchecked.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where the units expect the binary; `verify` checks that it exists.
const INSTALLED_BINARY: &str = "/usr/local/bin/chatkeep";
/// The bar for `systemd-analyze security` (0 best, 10 worst).
const MAX_EXPOSURE: f64 = 2.0;
/// The units the README tells people to install.
const EXPECTED_UNITS: [&str; 5] = [
    "chatkeep.service",
    "chatkeep-sync@.service",
    "chatkeep-sync@.timer",
    "chatkeep-archive.service",
    "chatkeep-archive.timer",
];

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd")
}

/// The unit files in `systemd/`, sorted by name.
fn unit_files() -> Vec<PathBuf> {
    let mut units: Vec<PathBuf> = std::fs::read_dir(units_dir())
        .expect("systemd/ is readable")
        .map(|entry| entry.expect("systemd/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "service" || e == "timer"))
        .collect();
    units.sort();
    for expected in EXPECTED_UNITS {
        assert!(
            units.iter().any(|u| u.ends_with(expected)),
            "systemd/{expected} is missing"
        );
    }
    units
}

/// Copies every unit into a temporary directory, with the installed binary
/// path replaced by the binary cargo built, so that `verify` finds it. The
/// units stay side by side, so a timer finds its service.
fn staged_units() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let staged = unit_files()
        .iter()
        .map(|unit| {
            let text = std::fs::read_to_string(unit).expect("unit file is readable");
            let name = unit.file_name().expect("unit file name");
            if unit.extension().is_some_and(|e| e == "service") {
                assert!(
                    text.contains(&format!("ExecStart={INSTALLED_BINARY} ")),
                    "{}: ExecStart= should run {INSTALLED_BINARY}",
                    unit.display()
                );
            }
            let path = dir.path().join(name);
            let text = text.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_chatkeep"));
            std::fs::write(&path, text).expect("staged unit is written");
            path
        })
        .collect();
    (dir, staged)
}

/// Runs a systemd tool, failing the test with what to install if it is not
/// there.
fn systemd_tool(program: &str, args: &[&str]) -> Output {
    match Command::new(program)
        .args(args)
        .env("SYSTEMD_PAGER", "cat")
        .env("SYSTEMD_COLORS", "0")
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "{program} is not installed: install Debian's `systemd` package \
             (apt-get install --no-install-recommends systemd) to check the units in systemd/"
        ),
        Err(e) => panic!("cannot run {program}: {e}"),
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

#[test]
fn systemd_analyze_verify_accepts_every_unit_without_a_warning() {
    let (_dir, units) = staged_units();
    for unit in &units {
        let out = systemd_tool("systemd-analyze", &["verify", path_str(unit)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "systemd-analyze verify {} failed ({}):\n{stderr}",
            unit.display(),
            out.status
        );
        // verify also loads the system's own units (network-online.target,
        // ...) and may warn about them; only what names ours is our concern.
        let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("chatkeep")).collect();
        assert!(
            ours.is_empty(),
            "systemd-analyze verify {} warns:\n{}",
            unit.display(),
            ours.join("\n")
        );
        if !stderr.trim().is_empty() {
            eprintln!("systemd-analyze verify: warnings about other units:\n{stderr}");
        }
    }
}

/// The number in `→ Overall exposure level for chatkeep.service: 1.1 OK 🙂`.
fn overall_exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level for"))?;
    let (_, rating) = line.rsplit_once(": ")?;
    rating.split_whitespace().next()?.parse().ok()
}

#[test]
fn systemd_analyze_security_rates_every_service_2_0_or_better() {
    let (_dir, units) = staged_units();
    let services = units
        .iter()
        .filter(|u| u.extension().is_some_and(|e| e == "service"));
    for service in services {
        let out = systemd_tool(
            "systemd-analyze",
            &["security", "--offline=true", "--no-pager", path_str(service)],
        );
        let report = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "systemd-analyze security --offline=true {} failed ({}):\n{stderr}{report}",
            service.display(),
            out.status
        );
        let exposure = overall_exposure(&report)
            .unwrap_or_else(|| panic!("no overall exposure level in the report:\n{report}{stderr}"));
        eprintln!("{}: exposure {exposure}", service.display());
        assert!(
            exposure <= MAX_EXPOSURE,
            "{} has an exposure of {exposure}, more than {MAX_EXPOSURE:.1}; \
             the settings that cost the most are marked ✗:\n{report}",
            service.display()
        );
    }
}

#[test]
fn overall_exposure_is_read_from_the_report() {
    let report = "  NAME   DESCRIPTION   EXPOSURE\n\
                  ✗ PrivateNetwork=   Service has access to the host's network   0.5\n\
                  \n→ Overall exposure level for chatkeep.service: 1.1 OK 🙂\n";
    assert_eq!(overall_exposure(report), Some(1.1));
    assert_eq!(
        overall_exposure("→ Overall exposure level for x.service: 9.6 UNSAFE 😨"),
        Some(9.6)
    );
    assert_eq!(overall_exposure("no rating here"), None);
}

#[test]
fn sysusers_file_creates_the_user_the_units_run_as() {
    let root = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir(root.path().join("etc")).expect("etc/ in the temporary root");
    let config = units_dir().join("chatkeep.sysusers");
    let root_arg = format!("--root={}", path_str(root.path()));
    let out = systemd_tool("systemd-sysusers", &[&root_arg, path_str(&config)]);
    assert!(
        out.status.success(),
        "systemd-sysusers {} failed ({}):\n{}",
        config.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).expect("passwd");
    let group = std::fs::read_to_string(root.path().join("etc/group")).expect("group");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("chatkeep:") && l.contains(":/var/lib/chatkeep:")),
        "no chatkeep user with home /var/lib/chatkeep in:\n{passwd}"
    );
    assert!(group.lines().any(|l| l.starts_with("chatkeep:")), "{group}");

    for unit in unit_files()
        .iter()
        .filter(|u| u.extension().is_some_and(|e| e == "service"))
    {
        let text = std::fs::read_to_string(unit).expect("unit file is readable");
        for setting in ["User=chatkeep", "Group=chatkeep"] {
            assert!(
                text.lines().any(|l| l == setting),
                "{} lacks {setting}",
                unit.display()
            );
        }
    }
}

/// Whether `address` is in `prefix` (`a.b.c.d/n`, `x::y/n`, or one address).
fn in_prefix(address: std::net::IpAddr, prefix: &str) -> bool {
    use std::net::IpAddr;
    let (net, len) = prefix
        .split_once('/')
        .map_or((prefix, None), |(n, l)| (n, Some(l)));
    let net: IpAddr = net.parse().unwrap_or_else(|e| panic!("{prefix}: {e}"));
    let (a, n, bits) = match (address, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u128::from(u32::from(a)), u128::from(u32::from(n)), 32),
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128),
        _ => return false,
    };
    let len: u32 = len.map_or(bits, |l| l.parse().unwrap_or_else(|e| panic!("{prefix}: {e}")));
    assert!(len <= bits, "{prefix}");
    // The top `len` of `bits` bits agree.
    let drop = bits - len;
    a.checked_shr(drop).unwrap_or(0) == n.checked_shr(drop).unwrap_or(0)
}

#[test]
fn every_service_denies_link_local_and_metadata_addresses_but_not_loopback_or_the_internet() {
    for unit in unit_files()
        .iter()
        .filter(|u| u.extension().is_some_and(|e| e == "service"))
    {
        let text = std::fs::read_to_string(unit).unwrap();
        let denied: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("IPAddressDeny="))
            .flat_map(str::split_whitespace)
            .collect();
        let blocked = |address: &str| denied.iter().any(|p| in_prefix(address.parse().unwrap(), p));
        for address in ["169.254.169.254", "169.254.0.1", "fe80::1", "fd00:ec2::254"] {
            assert!(
                blocked(address),
                "{}: {address} is reachable ({denied:?})",
                unit.display()
            );
        }
        for address in [
            "127.0.0.53",
            "127.0.0.1",
            "::1",
            "1.1.1.1",
            "2606:4700::1111",
            "10.0.0.1",
        ] {
            assert!(
                !blocked(address),
                "{}: {address} is denied ({denied:?})",
                unit.display()
            );
        }
    }
}

/// Timer mode is a whole mode: the timers' runs take turns on the data
/// directory instead of failing (exit 2 would fail the unit), and
/// snapshots have a timer of their own.
#[test]
fn the_timer_units_wait_for_the_lock_and_snapshots_have_their_own_timer() {
    let read = |name: &str| std::fs::read_to_string(units_dir().join(name)).expect("unit is readable");
    let exec_start = |text: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("an ExecStart= line")
            .to_owned()
    };
    let sync = exec_start(&read("chatkeep-sync@.service"));
    assert!(sync.contains(" sync --lock-wait "), "{sync}");
    let archive = exec_start(&read("chatkeep-archive.service"));
    assert!(archive.contains(" archive --lock-wait "), "{archive}");
    // The binary accepts what the units give it.
    for line in [&sync, &archive] {
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        let wait = args
            .windows(2)
            .find(|w| w[0] == "--lock-wait")
            .map(|w| w[1])
            .expect("--lock-wait has a value");
        assert!(
            chatkeep::config::parse_duration(wait).is_ok_and(|d| d >= std::time::Duration::from_secs(3600)),
            "{line}: a wait that outlasts a long sync"
        );
    }
    let timer = read("chatkeep-archive.timer");
    assert!(
        timer.contains("OnCalendar=") && timer.contains("Persistent=true"),
        "{timer}"
    );
}
