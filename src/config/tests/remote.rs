//! `[[remote]]`.

use super::*;

/// MINIMAL with `lines` after it, the first of them on line 8.
fn with(lines: &str) -> String {
    format!("{MINIMAL}{lines}\n")
}

#[test]
fn a_remote_is_read_with_its_defaults() {
    let config = parse(&with(
        "[[remote]]\nname = \"offsite\"\nurl = \"s3://my-backups/chatkeep/home/\"",
    ))
    .expect("valid");
    assert_eq!(
        config.remotes,
        [RemoteConfig {
            name: "offsite".into(),
            bucket: "my-backups".into(),
            prefix: "chatkeep/home".into(),
            endpoint: None,
            region: "us-east-1".into(),
            credentials: RemoteCredentials::Environment,
            require_encryption: false,
            retention: None,
            allow_insecure_http: false,
            concurrency: 2,
            bandwidth_limit: None,
            retry: RemoteRetry {
                max_retries: 4,
                initial_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(5),
            },
        }]
    );
    assert_eq!(config.remotes[0].url(), "s3://my-backups/chatkeep/home");
    assert!(parse(MINIMAL).expect("valid").remotes.is_empty());
}

#[test]
fn every_remote_key_is_read() {
    let config = parse(&with(
        "[[remote]]\nname = \"b2\"\nurl = \"s3://bucket\"\nendpoint = \"https://s3.example.com:8443/\"\n\
         region = \"eu-central-003\"\naccess_key_id_file = \"keys/id\"\n\
         secret_access_key_file = \"/etc/chatkeep/keys/secret\"\nrequire_encryption = true\nkeep_last = 3\n\
         concurrency = 4\nbandwidth_limit = \"10MiB\"\nmax_retries = 8\ninitial_backoff = \"1s\"\n\
         max_backoff = \"1m\"\n\n\
         [[remote]]\nname = \"lan\"\nurl = \"s3://bucket/x\"\nendpoint = \"http://nas.lan:9000\"\n\
         allow_insecure_http = true\naccess_key_id = \"AKIA\"\nsecret_access_key = \"s3cr3t\"",
    ))
    .expect("valid");
    let [b2, lan] = config.remotes.as_slice() else {
        panic!("{:?}", config.remotes)
    };
    assert_eq!(b2.prefix, "");
    assert_eq!(b2.endpoint.as_deref(), Some("https://s3.example.com:8443"));
    assert_eq!(b2.region, "eu-central-003");
    assert_eq!(
        b2.credentials,
        RemoteCredentials::Files {
            access_key_id: PathBuf::from("/etc/chatkeep/keys/id"),
            secret_access_key: PathBuf::from("/etc/chatkeep/keys/secret"),
        }
    );
    assert!(b2.require_encryption);
    let keep = b2.retention.expect("its own retention");
    assert_eq!((keep.keep_last, keep.keep_daily, keep.keep_monthly), (3, 0, 0));
    assert_eq!((b2.concurrency, b2.bandwidth_limit), (4, Some(10 << 20)));
    assert_eq!(
        b2.retry,
        RemoteRetry {
            max_retries: 8,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    );
    assert!(lan.allow_insecure_http);
    assert!(matches!(lan.credentials, RemoteCredentials::Inline { .. }));
    assert_eq!(config.remote("lan"), Some(lan));
}

#[test]
fn malformed_remotes_are_rejected_at_their_line_and_column() {
    assert_rejected(
        &with("[remote]\nname = \"x\""),
        8,
        1,
        "[[remote]], with double brackets",
    );
    assert_rejected(
        &with("[[remote]]\nurl = \"s3://bucket\""),
        8,
        1,
        "missing key `name` in [[remote]]",
    );
    assert_rejected(
        &with("[[remote]]\nname = \"x\""),
        8,
        1,
        "missing key `url` in [[remote]]",
    );
    assert_rejected(
        &with("[[remote]]\nname = \"Off site\"\nurl = \"s3://bucket\""),
        9,
        8,
        "remote.name must be",
    );
    assert_rejected(
        &with("[[remote]]\nname = \"x\"\nurl = \"https://bucket\""),
        10,
        7,
        "s3://",
    );
    assert_rejected(
        &with("[[remote]]\nname = \"x\"\nurl = \"s3://B\""),
        10,
        7,
        "bucket name must be",
    );
    assert_rejected(
        &with("[[remote]]\nname = \"x\"\nurl = \"s3://bucket/a//b\""),
        10,
        7,
        "plain path segments",
    );
    assert_rejected(
        &with("[[remote]]\nname = \"x\"\nurl = \"s3://bucket\"\nendpoint = \"http://s3.example.com\""),
        11,
        12,
        "allow_insecure_http",
    );
    assert_rejected(
        &with("[[remote]]\nname = \"x\"\nurl = \"s3://bucket\"\nendpoint = \"https://h/bucket\""),
        11,
        12,
        "the bucket goes in url",
    );
    assert_rejected(
        &with("[[remote]]\nname = \"x\"\nurl = \"s3://bucket\"\nbucket = \"y\""),
        11,
        1,
        "unknown key `bucket` in [[remote]]",
    );
    assert_rejected(
        &with("[[remote]]\nname = \"x\"\nurl = \"s3://bucket\"\naccess_key_id_file = \"id\""),
        11,
        1,
        "is set alone",
    );
    assert_rejected(
        &with(
            "[[remote]]\nname = \"x\"\nurl = \"s3://bucket\"\naccess_key_id_file = \"id\"\n\
             secret_access_key = \"s\"",
        ),
        12,
        1,
        "remote.secret_access_key cannot be set together with remote.access_key_id_file (line 11)",
    );
    assert_rejected(
        &with(
            "[[remote]]\nname = \"x\"\nurl = \"s3://bucket\"\n[[remote]]\nname = \"x\"\nurl = \"s3://other\"",
        ),
        12,
        8,
        "remote `x` is listed twice: it is already at line 9",
    );
    assert_rejected(
        &with("[[remote]]\nname = \"x\"\nurl = \"s3://bucket\"\nkeep_last = -1"),
        11,
        13,
        "remote.keep_last must be",
    );
}

#[test]
fn politeness_limits_out_of_range_are_rejected_at_their_line_and_column() {
    let remote = |line: &str| {
        with(&format!(
            "[[remote]]\nname = \"x\"\nurl = \"s3://bucket\"\n{line}"
        ))
    };
    for (line, column, message) in [
        (
            "concurrency = 0",
            15,
            "remote.concurrency must be a whole number from 1 to 16, got 0",
        ),
        (
            "concurrency = 17",
            15,
            "remote.concurrency must be a whole number from 1 to 16",
        ),
        (
            "concurrency = \"2\"",
            15,
            "remote.concurrency must be a whole number",
        ),
        (
            "bandwidth_limit = \"10MB/s\"",
            19,
            "remote.bandwidth_limit must be a size of at least 64KiB",
        ),
        (
            "bandwidth_limit = 1000",
            19,
            "remote.bandwidth_limit must be a size of at least 64KiB",
        ),
        (
            "max_retries = -1",
            15,
            "remote.max_retries must be a whole number from 0 to 100",
        ),
        (
            "initial_backoff = \"0s\"",
            19,
            "remote.initial_backoff must be longer than 0s",
        ),
        (
            "initial_backoff = \"10s\"\nmax_backoff = \"1s\"",
            0,
            "remote.max_backoff must be at least remote.initial_backoff (10s), got \"1s\"",
        ),
    ] {
        let (at_line, at_column) = if column == 0 { (12, 15) } else { (11, column) };
        assert_rejected(&remote(line), at_line, at_column, message);
    }
}

#[test]
fn the_effective_config_shows_each_remotes_limits_and_reads_back() {
    let text = with(
        "[[remote]]\nname = \"x\"\nurl = \"s3://bucket\"\nconcurrency = 3\nbandwidth_limit = \"1536KiB\"\n\
         max_retries = 0",
    );
    let config = parse(&text).expect("valid");
    let rendered = config.to_redacted_toml();
    for line in [
        "concurrency = 3\n",
        "bandwidth_limit = \"1536KiB\"\n",
        "max_retries = 0\n",
        "initial_backoff = \"200ms\"\n",
        "max_backoff = \"5s\"\n",
    ] {
        assert!(rendered.contains(line), "{line:?} not in:\n{rendered}");
    }
    let again = parse(&rendered).expect("the effective config reads back");
    assert_eq!(again.remotes, config.remotes);
    // Without a limit, none is shown.
    let plain = parse(&with("[[remote]]\nname = \"x\"\nurl = \"s3://bucket\""))
        .expect("valid")
        .to_redacted_toml();
    assert!(!plain.contains("bandwidth_limit"), "{plain}");
    assert!(plain.contains("concurrency = 2\n"), "{plain}");
}

#[test]
fn remote_keys_never_show_in_errors_debug_or_the_effective_config() {
    const ID: &str = "AKIAEXAMPLEKEYID1234";
    const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
    let text = with(&format!(
        "[[remote]]\nname = \"x\"\nurl = \"s3://bucket\"\naccess_key_id = \"{ID}\"\nsecret_access_key = \"{SECRET}\""
    ));
    let config = parse(&text).expect("valid");
    let rendered = config.to_redacted_toml();
    let debug = format!("{config:?}");
    for shown in [&rendered, &debug] {
        assert!(!shown.contains(ID) && !shown.contains(SECRET), "{shown}");
    }
    assert!(
        rendered.contains("secret_access_key = \"[redacted]\""),
        "{rendered}"
    );
    // The rendering reads back.
    let again = parse(&rendered.replace("[redacted]", "k")).expect("the effective config reads back");
    assert_eq!(again.remotes[0].url(), "s3://bucket");
    // A key with a line break is refused without repeating it.
    let broken = with(&format!(
        "[[remote]]\nname = \"x\"\nurl = \"s3://bucket\"\naccess_key_id = \"{ID}\"\nsecret_access_key = \"{SECRET}\\n\""
    ));
    let (line, _, message) = rejection(&broken);
    assert_eq!(line, 12);
    assert!(
        !message.contains(SECRET) && message.contains("not shown"),
        "{message}"
    );
}
