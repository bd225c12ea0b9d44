//! Upload of snapshots to an S3-compatible store on loopback: `chatkeep
//! push` of the release binary, its wall time, throughput (snapshot bytes
//! uploaded per second of the whole command) and peak RSS, for snapshots
//! of 100,000 and 1,000,000 messages, at several `concurrency` settings
//! and under a `bandwidth_limit` below what the store takes here.
//!
//! The store is s3s-fs, the server the remote tests run (installed the
//! same way, under `target/test-tools/`, a debug build), over a temporary
//! directory; its CPU time per push is shown, as it shares the machine.
//! The personalities' stores come from a `chatkeep sync` of the
//! in-process fake (pages of 1000), their snapshots from `chatkeep
//! archive` with no remote configured; each push then names the
//! personality, and a fresh key prefix when every snapshot should go up.
//!
//! `cargo bench --bench remote_upload [-- MESSAGES]` (default 1,000,000;
//! the small personality has a tenth of it).

use std::path::Path;
use std::time::Duration;

#[path = "util/mod.rs"]
mod util;

#[path = "../tests/common/s3.rs"]
#[allow(dead_code)]
mod s3;

use chatkeep::archive::Manifest;
use chatkeep::fake::PersonalitySpec;
use s3::S3Server;
use util::run_chatkeep;

const BUCKET: &str = "bench";

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The config: the fake, gzip `level`, and with `remote` (a prefix and the
/// extra keys of the `[[remote]]`) a remote on `endpoint`.
fn write_config(path: &Path, base_url: &str, level: u32, remote: Option<(&str, &str, &str)>) {
    let mut text = format!(
        "[service]\nbase_url = \"{base_url}\"\njargon = \"shapes\"\ncookie_file = \"cookie\"\n\
         chat_page_size = 1000\nmax_page_size = 1000\n\n\
         [storage]\ndata_dir = \"data\"\n\n\
         [rate_limit]\nrequests_per_second = 1000000.0\nburst = 1000\n\n\
         [archive]\ncompression_level = {level}\nskip_unchanged = false\nkeep_last = 100\n\n\
         [[personality]]\nname = \"million\"\n\n[[personality]]\nname = \"tenth\"\n"
    );
    if let Some((endpoint, prefix, extra)) = remote {
        text.push_str(&format!(
            "\n[[remote]]\nname = \"bench\"\nurl = \"s3://{BUCKET}/{prefix}\"\nendpoint = \"{endpoint}\"\n\
             access_key_id_file = \"s3-id\"\nsecret_access_key_file = \"s3-secret\"\n{extra}\n"
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// User and system CPU time the process `pid` has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 here; in
    // clock ticks, 100 a second on Linux.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn main() {
    let messages = util::messages_arg();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let fake = util::fake_with_large_pages(
        &runtime,
        vec![
            PersonalitySpec::new("million", messages),
            PersonalitySpec::new("tenth", messages / 10),
        ],
    );
    let server = S3Server::start(&[BUCKET]);
    let endpoint = server.endpoint();
    let pid = server.pid().expect("the server runs");
    let dir = tempfile::tempdir().expect("tempdir");
    util::write_cookie(dir.path());
    std::fs::write(dir.path().join("s3-id"), s3::ACCESS_KEY).unwrap();
    std::fs::write(dir.path().join("s3-secret"), s3::SECRET_KEY).unwrap();
    let config = dir.path().join("config.toml");
    write_config(&config, &fake.base_url(), 6, None);
    let sync = run_chatkeep(&config, &["sync"]);
    for name in ["tenth", "million"] {
        run_chatkeep(&config, &["archive", name]);
    }
    println!(
        "chatkeep push benchmark: {messages} and {} messages (synced in {:.1} s), s3s-fs {} (debug build) on loopback",
        messages / 10,
        sync.wall.as_secs_f64(),
        s3::S3S_FS_VERSION
    );
    println!(
        "snapshots                        bytes up    wall      throughput   peak RSS   server CPU   settings"
    );
    let rows: [(&str, &str, &str, &str); 7] = [
        ("tenth (level 6)", "tenth", "c2", ""),
        ("million (level 6)", "million", "c2", ""),
        ("million (level 1)", "million", "c2", ""),
        ("both million", "million", "c1", "concurrency = 1"),
        ("both million", "million", "c4", "concurrency = 4"),
        ("both million", "million", "c8", "concurrency = 8"),
        ("both million", "million", "bw", "bandwidth_limit = \"4MiB\""),
    ];
    for (what, name, prefix, extra) in rows {
        if what == "million (level 1)" {
            // A second, larger snapshot of the same history: the push to
            // the same prefix uploads only it.
            write_config(&config, &fake.base_url(), 1, None);
            run_chatkeep(&config, &["archive", "million"]);
        }
        write_config(&config, &fake.base_url(), 6, Some((&endpoint, prefix, extra)));
        let manifest = Manifest::load(&dir.path().join("data/archives").join(name), name).expect("manifest");
        let server_cpu = cpu_time(pid);
        let run = run_chatkeep(&config, &["push", name, "--remote", "bench"]);
        let server_cpu = cpu_time(pid) - server_cpu;
        let uploaded: u64 = manifest
            .snapshots
            .iter()
            .filter(|e| run.stdout.contains(&format!("uploaded {} (", e.file)))
            .map(|e| e.size)
            .sum();
        assert!(uploaded > 0, "nothing uploaded:\n{}\n{}", run.stdout, run.log);
        println!(
            "{what:<30} {:>8.1} MiB  {:>6.2} s  {:>6.1} MiB/s  {:>6.1} MiB  {:>7.2} s   {}",
            mib(uploaded),
            run.wall.as_secs_f64(),
            mib(uploaded) / run.wall.as_secs_f64(),
            run.peak_rss_kib as f64 / 1024.0,
            server_cpu.as_secs_f64(),
            if extra.is_empty() {
                "concurrency = 2 (default)"
            } else {
                extra
            }
        );
    }
    drop(server);
}
