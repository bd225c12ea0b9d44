//! Shell completions and man pages, generated from the command line's
//! definition by the real binary, with no config needed.

use std::process::{Command, Output};

fn chatkeep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chatkeep"))
        .args(args)
        .env("CHATKEEP_CONFIG", "/nonexistent/chatkeep.toml")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn bash_completions_name_the_commands_and_their_options() {
    let script = stdout(&chatkeep(&["completions", "bash"]));
    assert!(script.contains("complete -F _chatkeep"), "{script}");
    for word in [
        "sync",
        "export",
        "archive",
        "forget",
        "search",
        "reindex",
        "--sort",
        "completions",
        "--format",
        "--since",
    ] {
        assert!(script.contains(word), "{word} missing from the bash completions");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = stdout(&chatkeep(&["completions", shell]));
        assert!(script.contains("export"), "{shell}: {script}");
    }
    let out = chatkeep(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_man_page_is_roff_for_chatkeep() {
    let page = stdout(&chatkeep(&["man"]));
    assert!(page.contains(".TH chatkeep 1"), "{page}");
    assert!(
        page.contains(".SH NAME") && page.contains(".SH SYNOPSIS"),
        "{page}"
    );
    assert!(page.contains("chatkeep\\-export(1)"), "{page}");

    let dir = tempfile::tempdir().unwrap();
    let out = chatkeep(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    for page in [
        "chatkeep.1",
        "chatkeep-export.1",
        "chatkeep-cookie-set.1",
        "chatkeep-search.1",
        "chatkeep-reindex.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.contains(".TH chatkeep"), "{page}: {text}");
    }
    // serve-fake is a documented command (to try a config): it has a page.
    assert!(dir.path().join("chatkeep-serve-fake.1").exists());
}
