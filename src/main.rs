//! The `chatkeep` command: parses arguments and dispatches to the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use chatkeep::commands::{self, Fatal};
use chatkeep::config::{ConfigLocation, PersonalitySlug};
use chatkeep::export::{ExportOptions, Format, MediaLinks, Period, Split, What};
use chatkeep::logging;

const AFTER_HELP: &str = "\
Exit codes: 0 all good; 1 a personality failed (the others were backed up);
2 usage, config or data directory error; 3 the service refused the session cookie.

Start with `chatkeep demo` to see a full and an incremental backup against a
built-in fake service, offline; then `chatkeep serve-fake` runs that service
on its own, to try a config of yours against it.";

/// Keeps a complete, lossless backup of AI personalities and their chat history.
#[derive(Debug, Parser)]
#[command(version, about, after_help = AFTER_HELP)]
struct Cli {
    /// Config file (TOML; see config.example.toml) [env: CHATKEEP_CONFIG]
    ///
    /// Without --config or CHATKEEP_CONFIG: your own
    /// $XDG_CONFIG_HOME/chatkeep/config.toml (~/.config/chatkeep/config.toml
    /// when XDG_CONFIG_HOME is not set) if it exists, else
    /// /etc/chatkeep/config.toml.
    // Not clap's `env` and `default_value`: a value from the environment
    // makes clap print `--config <CONFIG>` in every usage line as if it
    // were required. Resolved by `ConfigLocation::find`.
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Only warnings and errors in the log.
    #[arg(long, short, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run as a daemon: sync on the configured schedules until stopped.
    ///
    /// One daemon per data directory. SIGTERM or SIGINT stops it (running
    /// syncs stop at their next page boundary, within shutdown_timeout); a
    /// second SIGINT exits at once. SIGHUP re-reads the config and the
    /// cookie; an invalid config is logged and the running one kept. Speaks
    /// the systemd notify protocol when NOTIFY_SOCKET is set.
    Run,
    /// Back up the named personalities now (all configured ones without names).
    ///
    /// Backs up the configured sections of each personality (profile,
    /// memories, knowledge, training, user personalization) and every chat
    /// message not yet stored, then prints one line per personality saying
    /// what changed. The newest messages ([sync] refresh: the first page by
    /// default) are compared with the backup: a regenerated reply is kept as
    /// a new revision beside the earlier one, a message the service no
    /// longer returns is marked, never removed. Now and then ([sync]
    /// tail_check, a day by default) a sync also looks below the oldest
    /// stored message for older history. An empty answer is asked again
    /// before it is believed. An interrupted run resumes where it stopped.
    /// Ctrl-C stops at the next page boundary; a second Ctrl-C quits at once
    /// (also safe).
    ///
    /// While the daemon runs, it asks the daemon to run this sync now (right
    /// after the one it is in the middle of, if any) and prints what it did,
    /// with the same exit code; Ctrl-C then stops only the waiting. While
    /// another sync or archive holds the data directory, --lock-wait waits
    /// for it (the timer units wait up to 6h).
    Sync {
        /// Personality names (slugs).
        names: Vec<PersonalitySlug>,
        /// Also back up every personality the account owns, configured or not.
        #[arg(long)]
        all: bool,
        /// When another sync or archive holds the data directory, wait up to
        /// this long for it (such as 30m or 6h) instead of exiting 2.
        #[arg(long, value_name = "DURATION", value_parser = chatkeep::config::parse_duration)]
        lock_wait: Option<Duration>,
    },
    /// Compare each personality's whole history on the service with its backup.
    ///
    /// Walks the service's entire chat history again (under the same rate
    /// limit as a sync; an interrupted audit resumes, unless a sync committed
    /// since, and then walks again) and compares it with the
    /// backup message by message: missing here, changed upstream (a
    /// regenerated reply), gone upstream (deleted, or a chat reset), back
    /// upstream (marked gone, returned since), and holes (missing messages
    /// next to each other, which an interrupted or misled walk can leave).
    /// A sync compares only the newest messages; an audit, all of them.
    /// Prints a table, or with --json a report. --repair adopts what
    /// differs through the same crash-safe commit as a sync: missing
    /// messages stored in their place, changes kept as new revisions (the
    /// earlier version stays), gone ones marked, never removed.
    ///
    /// Exit 0 when the backup holds what the service holds, 1 when anything
    /// differed (even if --repair adopted it) or an audit failed, 3 when the
    /// service refused the session cookie. Needs the data directory: not
    /// while the daemon runs (give it an audit_schedule instead).
    Audit {
        /// Personality names (slugs); all configured ones without names.
        names: Vec<PersonalitySlug>,
        /// Adopt what differs into the backup.
        #[arg(long)]
        repair: bool,
        /// Print one JSON document instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Write a personality's chat history, oldest first, or its documents.
    ///
    /// Each message is written in its current version, exactly as the
    /// service last sent it. Messages the service no longer returns (deleted
    /// upstream, or gone in a chat reset) are kept in the backup and written
    /// too, marked with a field of chatkeep's own,
    /// `"_chatkeep": {"deleted_upstream_at": "..."}`; --upstream-only leaves
    /// them out, as the service shows the chat today. A message that changed
    /// upstream (a regenerated reply) keeps every earlier version in the
    /// backup: --revisions (jsonl only) writes them too, each on its own line
    /// just before the current one, marked `"_chatkeep": {"superseded_at":
    /// "..."}`. No field of the service's is ever altered.
    ///
    /// `--format conversations` writes one conversation per line (JSON
    /// Lines): `{"start", "end", "message_count", "summary", "ids",
    /// "messages"}`, a conversation ending where the next message comes more
    /// than `--gap` after the last one; conversations with fewer than
    /// `--min-messages` messages are left out. The summary, made without
    /// network or model, is `{"opening": its first user line (200
    /// characters at most), "terms": its 8 most frequent words outside a
    /// list of common English ones}`.
    ///
    /// `--format sillytavern` (or `st`) writes each conversation (split as
    /// conversations are, every one kept unless --min-messages says
    /// otherwise) as a SillyTavern chat file into -o DIR, named
    /// `<Name> - <start>.jsonl`: a header line (`user_name`, the user
    /// personalization's preferred name or "You"; `character_name`;
    /// `create_date`; `chat_metadata`), then a line per turn (`name`,
    /// `is_user`, `send_date`, `mes`, `extra`): a stored message becomes the
    /// user's line (when it has text or an attachment) and the
    /// personality's (when it has a reply), regenerated replies its `swipes`.
    ///
    /// `--format openai` writes chat fine-tuning JSON Lines, one example per
    /// conversation, `{"messages": [{"role": "system", ...}, {"role":
    /// "user", ...}, {"role": "assistant", ...}, ...]}`; `--format sharegpt`
    /// one JSON array, `[{"conversations": [{"from": "system"|"human"|"gpt",
    /// "value": ...}]}, ...]`. The system turn is the profile's prompt (else
    /// its description). Each stored message is one exchange, the user's
    /// turn then the reply; a message without a reply, or without user text
    /// or attachment, is left out, and an attachment alone stands as
    /// `[attachment: <type>]`. No example is longer than --max-chars
    /// characters: a longer conversation is split into several examples,
    /// each with the system turn; a message too long for any is left out.
    /// What was left out is said on standard error.
    ///
    /// `--format character-card` (or `card`) writes the personality as a
    /// Character Card V2 (`{"spec": "chara_card_v2", "spec_version": "2.0",
    /// "data": {...}}`) from the stored profile (name; search_description or
    /// description; prompt as system_prompt; ...), knowledge (the entries
    /// of `character_book`) and training (questions and answers as
    /// `mes_example`); every profile field with no place in the card is kept
    /// as received under `data.extensions.chatkeep`. With --png AVATAR, a
    /// copy of that PNG holding the card (base64) in its `chara` tEXt chunk
    /// (an earlier card chunk replaced) is written instead.
    ///
    /// `--what` chooses the parts: the chat history (the default), a
    /// document (profile, memories, knowledge, training,
    /// user_personalization), several, or all. A document is written byte
    /// for byte as stored, in JSON, under the name earlier tools used
    /// (<name>.json, <name>_memories.json, ...). More than one part needs
    /// -o DIR, one file each. A file already there is replaced, and the
    /// export says so. A document the backup does not hold is named on
    /// standard error with the reason, and is not an error: knowledge and
    /// training are not available unless the account owns the personality.
    Export {
        /// Personality name (slug).
        name: PersonalitySlug,
        /// The parts to export, comma-separated or repeated.
        #[arg(
            long,
            short,
            value_enum,
            value_name = "PART",
            value_delimiter = ',',
            default_value = "chat"
        )]
        what: Vec<What>,
        /// Format of the chat history (documents are written as stored, in JSON).
        #[arg(long, short, value_enum, default_value = "json")]
        format: Format,
        /// Write to this file (atomically) instead of standard output; into a
        /// directory, as <name>_chat_history.<json|jsonl|md> (<name>_conversations.jsonl,
        /// <name>_openai.jsonl, <name>_sharegpt.json, <name>.card.json or .card.png;
        /// "<Name> - <start>.jsonl" per SillyTavern chat) and each document as
        /// <name><_part>.json.
        #[arg(long, short, value_name = "FILE|DIR")]
        output: Option<PathBuf>,
        /// Only messages from this date (2024-01-31, UTC) or RFC 3339 time on.
        #[arg(long, value_name = "DATE", value_parser = chatkeep::export::parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only messages up to this date (the whole day, UTC) or RFC 3339 time.
        #[arg(long, value_name = "DATE", value_parser = chatkeep::export::parse_until)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Conversations, SillyTavern chats and fine-tuning examples: the silence
        /// that ends one, such as 30m, 2h or 90s (a silence of exactly this long
        /// does not) [default: 30m].
        #[arg(long, value_name = "DURATION", value_parser = chatkeep::config::parse_duration)]
        gap: Option<Duration>,
        /// Conversations, SillyTavern chats and fine-tuning examples: leave out
        /// conversations with fewer messages [default: 5 for conversations, else 1].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        min_messages: Option<u64>,
        /// openai and sharegpt: no example longer than this many characters (a
        /// conversation longer is split into several; a message too long
        /// for one on its own is left out, and counted) [default: 32000].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(200..))]
        max_chars: Option<u64>,
        /// character-card: embed the card in a copy of this PNG (the avatar),
        /// as the `chara` tEXt chunk frontends read; written to -o FILE, or
        /// DIR/<name>.card.png.
        #[arg(long, value_name = "AVATAR")]
        png: Option<PathBuf>,
        /// Leave out messages the service no longer returns (kept and marked otherwise).
        #[arg(long)]
        upstream_only: bool,
        /// Also write the earlier versions of messages that changed upstream (jsonl only).
        #[arg(long)]
        revisions: bool,
        /// Media as the service's URLs (the messages as received), or as the
        /// files chatkeep fetched: copied to DIR/media/ and named in each
        /// message's "_chatkeep": {"media": ...}; local needs -o DIR.
        #[arg(long, value_enum, default_value = "url")]
        media: MediaLinks,
    },
    /// Write a snapshot of each personality, then apply retention.
    ///
    /// One file per personality, <archive dir>/<name>/<name>-<UTC time>.tar.gz
    /// (.tar.gz.age when [archive] has age recipients), holding its documents,
    /// its chat history in the export format and (unless [archive] media =
    /// false) the media files it points to, as media/<sha256>.<ext>, listed
    /// with its SHA-256 in manifest.json. None is made when nothing changed
    /// since the newest one (skip_unchanged). While the daemon runs, it asks
    /// the daemon to take the snapshots now and prints what it did; while
    /// another sync or archive holds the data directory, --lock-wait waits
    /// for it.
    Archive {
        /// Personality names (slugs); all configured ones without names.
        names: Vec<PersonalitySlug>,
        /// When another sync or archive holds the data directory, wait up to
        /// this long for it (such as 30m or 6h) instead of exiting 2.
        #[arg(long, value_name = "DURATION", value_parser = chatkeep::config::parse_duration)]
        lock_wait: Option<Duration>,
    },
    /// Apply retention: list which snapshots stay and why, remove the others.
    ///
    /// The newest snapshot is always kept. Files an interrupted run left in
    /// the archive directory are removed too.
    Prune {
        /// Personality names (slugs); all configured ones without names.
        names: Vec<PersonalitySlug>,
        /// Only show what would be kept and removed; change nothing (works beside the daemon).
        #[arg(long)]
        dry_run: bool,
        /// Apply the retention of this [[remote]] (its keep_*, else
        /// [archive]'s) to the snapshots it holds, instead of the local ones.
        #[arg(long, value_name = "NAME")]
        remote: Option<String>,
    },
    /// Check every snapshot against its manifest, and the live store against its state.
    ///
    /// Each snapshot: size and SHA-256, then the gzip stream, every member
    /// parsed as JSON, each media file hashed against its name, and the chat
    /// history's message count, order, time range and unique ids. An
    /// encrypted one is only checked by its SHA-256 unless --identity
    /// decrypts it. The live store: every chat log message decoded and the
    /// count, oldest and newest compared with its state; each media file the
    /// personality points to hashed.
    /// Exit 1 when anything is wrong, each problem named on its own line.
    /// Reads only, so it works beside the daemon.
    Verify {
        /// Personality names (slugs); all configured ones without names.
        names: Vec<PersonalitySlug>,
        /// Only the newest snapshot of each.
        #[arg(long)]
        latest: bool,
        /// age identity file (from age-keygen) to decrypt encrypted snapshots.
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
        /// Check the snapshots on this [[remote]] instead: each listed one is
        /// there with its size; with --read-data, downloaded and its SHA-256
        /// compared with the remote's manifest.
        #[arg(long, value_name = "NAME")]
        remote: Option<String>,
        /// With --remote: download and hash every snapshot, or PERCENT of
        /// them chosen at random.
        #[arg(
            long,
            value_name = "PERCENT",
            requires = "remote",
            num_args = 0..=1,
            default_missing_value = "100",
            value_parser = clap::value_parser!(u8).range(1..=100)
        )]
        read_data: Option<u8>,
    },
    /// Upload to the [[remote]] stores the snapshots they lack.
    ///
    /// `archive` does this after each snapshot; `push` is for a new remote
    /// or after an outage. Each snapshot is uploaded whole (multipart,
    /// streamed) before the remote's manifest lists it, so an interrupted
    /// upload is never taken for a snapshot, and the next push completes
    /// it. The remote's retention (its keep_*, or [archive]'s) is applied
    /// there too. Exit 1 when a remote failed.
    Push {
        /// Personality names (slugs); all configured ones without names.
        names: Vec<PersonalitySlug>,
        /// Only this remote (repeatable); all of them without it.
        #[arg(long, value_name = "NAME")]
        remote: Vec<String>,
    },
    /// Unpack a snapshot into a directory, or rebuild the backup from it.
    ///
    /// The snapshot's SHA-256 is checked first. With --to DIR its files are
    /// unpacked there (media files to DIR/media/); existing files are not
    /// overwritten unless --force.
    ///
    /// With --rebuild the personality's backup in the data directory is made
    /// again from the snapshot, for a lost or damaged data directory: the whole
    /// history with its earlier versions and deletion marks, the documents, the
    /// media and their index. The next sync then fetches only what is newer. It
    /// takes the data directory's lock, builds aside and renames into place, so
    /// an interruption leaves the old backup or the new one; a backup that
    /// exists is replaced only with --force.
    Restore {
        /// Personality name (slug).
        name: PersonalitySlug,
        /// Which snapshot: "latest", its file name, or its time as in the file name
        /// (20260102T030405Z) or RFC 3339 (2026-01-02T03:04:05Z).
        #[arg(long, value_name = "TIME", default_value = "latest")]
        snapshot: String,
        /// Directory to unpack into (created if missing).
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "rebuild",
            conflicts_with = "rebuild"
        )]
        to: Option<PathBuf>,
        /// Rebuild the personality's backup in the data directory from the snapshot.
        #[arg(long)]
        rebuild: bool,
        /// Replace files that exist in DIR (with --rebuild: a backup that exists).
        #[arg(long)]
        force: bool,
        /// age identity file (from age-keygen), for an encrypted snapshot.
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
        /// Restore from this [[remote]] (its manifest names the snapshots)
        /// instead of the local archive.
        #[arg(long, value_name = "NAME")]
        remote: Option<String>,
    },
    /// Store the session cookie, or check which account it logs in as.
    Cookie {
        #[command(subcommand)]
        action: CookieAction,
    },
    /// Show each personality's last sync, its outcome and its next run.
    ///
    /// Reads only the status files in the data directory: no network, no
    /// lock, so it works while the daemon runs. Lists the configured
    /// personalities and any other backup there that has a status file.
    /// Times are UTC.
    ///
    /// Exit code 0 when every configured personality's last sync ended ok, 1
    /// when any did not or never ran, so it can serve as a health check.
    /// Backups no longer in the config are listed but not counted; whether
    /// the daemon runs is shown but not counted either.
    ///
    /// A config file that does not load (a bad edit, which a running daemon
    /// refuses on reload) does not stop it: it says so, with the line and
    /// column, and reports all the same from the data directory given by
    /// --data-dir, else from `[storage] data_dir` read from the file as far
    /// as it parses. It then counts the personalities the file still names
    /// and those the running daemon schedules. Without either directory it
    /// exits 2.
    Status {
        /// Print one JSON document instead of the table.
        #[arg(long)]
        json: bool,
        /// Read this data directory instead of the config's; works without a valid config.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Remove the backup of a personality that is no longer wanted.
    ///
    /// Deletes <data_dir>/<NAME> and everything in it: a leftover of a
    /// typo, or the backup of a personality removed from the config. Asks
    /// first (y/N) on a terminal; elsewhere --yes must confirm. Refused
    /// while NAME is in a [[personality]] block of the config (remove it
    /// there first), and while a daemon, sync or archive holds the data
    /// directory (exit 2). Snapshots in the archive directory are not
    /// touched; remove them by hand if they are unwanted too.
    ///
    /// Exit 0 when removed, 1 when declined at the prompt, 2 when refused.
    Forget {
        /// Personality name (slug).
        name: PersonalitySlug,
        /// Remove without asking.
        #[arg(long, short)]
        yes: bool,
    },
    /// Back up as the earlier export script did, without a config file.
    ///
    /// SERVICE_COOKIE=... SERVICE_WEBSITE=https://... PERSONALITY_JARGON_TERM=...
    /// chatkeep backup NAME...
    ///
    /// A one-shot backup of those personalities (--all: every one the
    /// account owns) into ./data/service-backup/<NAME>/, the script's
    /// layout and file names (<NAME>.json, <NAME>_memories.json, ...,
    /// <NAME>_chat_history.json), with chatkeep's guarantees: crash-safe,
    /// resumable (run it again after an interruption), incremental (a
    /// second run fetches only what is new), at the default rate limit.
    ///
    /// It stands for this config file (--print-config prints it for the
    /// variables and names given), which `chatkeep sync` and the daemon
    /// read:
    ///
    ///   [service]
    ///   base_url = "$SERVICE_WEBSITE"
    ///   jargon = "$PERSONALITY_JARGON_TERM"
    ///   cookie_env = "SERVICE_COOKIE"
    ///
    ///   [storage]
    ///   data_dir = "data/service-backup"
    ///
    ///   [[personality]]
    ///   name = "NAME"
    ///
    /// Exit codes as `chatkeep sync`; 2 when a variable is missing.
    Backup {
        /// Personality names (slugs).
        names: Vec<PersonalitySlug>,
        /// Also back up every personality the account owns.
        #[arg(long)]
        all: bool,
        /// Print the config file this stands for, and do nothing else.
        #[arg(long)]
        print_config: bool,
    },
    /// Search the chat history of every personality backed up here.
    ///
    /// Prints each hit with its time (the message's place in the history,
    /// UTC), personality, who wrote it (user or personality) and the
    /// message id, then a snippet with the matching words highlighted
    /// (bold on a terminal, between ** otherwise). Newest first, or by
    /// relevance with --sort relevance. Earlier versions of revised
    /// messages, regenerated replies and messages the service no longer
    /// returns are found too, and marked so.
    ///
    /// The query is in tantivy's syntax: every word must match (a OR b for
    /// either), "a phrase" in quotes, -word to leave out (after --, as in
    /// `chatkeep search -- coffee -moon`), and fields: role:user or
    /// role:personality, version:current, version:earlier or
    /// version:regenerated, deleted:true, revised:true. Case and accents do
    /// not matter; Chinese, Japanese and Korean text is matched character by
    /// character, and emoji are words of their own.
    ///
    /// Reads the index in <data_dir>/search, beside a running daemon (no
    /// lock). Each sync keeps it up to date; when it lags behind the backup
    /// and nothing holds the data directory, search first catches it up.
    ///
    /// Exit 0 when something matched, 1 when nothing did, 2 for a query or
    /// date that cannot be read, or no backup.
    Search {
        /// What to look for (several words are one query).
        #[arg(required = true, value_name = "QUERY")]
        query: Vec<String>,
        /// Only this personality (repeat for several).
        #[arg(long, short, value_name = "NAME")]
        personality: Vec<PersonalitySlug>,
        /// Only messages from this date (2024-01-31, UTC) or RFC 3339 time on.
        #[arg(long, value_name = "DATE", value_parser = chatkeep::export::parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only messages up to this date (the whole day, UTC) or RFC 3339 time.
        #[arg(long, value_name = "DATE", value_parser = chatkeep::export::parse_until)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Print one JSON document: {"total", "hits": [...]}.
        #[arg(long)]
        json: bool,
        /// At most this many hits.
        #[arg(long, short = 'n', value_name = "N", default_value_t = 20)]
        limit: usize,
        /// The order of the hits.
        #[arg(long, value_enum, default_value = "newest")]
        sort: chatkeep::search::Sort,
    },
    /// Rebuild the search index from the backup.
    ///
    /// Makes the named personalities' part of the index (every
    /// personality's without names) anew from the chat history in the data
    /// directory; an index that cannot be read is made anew first. Syncs
    /// keep the index up to date on their own, and rebuild it when it is
    /// missing or from another version: this is for a damaged index, or to
    /// check. Needs the data directory: not while the daemon or a sync runs.
    Reindex {
        /// Personality names (slugs); all without names.
        names: Vec<PersonalitySlug>,
    },
    /// Adopt a backup made by the earlier export script.
    ///
    /// PATH is the personality's directory of that script (or the one
    /// above it), holding <NAME>_chat_history.json, <NAME>.json,
    /// <NAME>_memories.json, <NAME>_knowledge.json, <NAME>_training.json
    /// and <NAME>_user_personalization.json (any of them), or the chat
    /// history file itself. JSON may be pretty-printed and of any size: it
    /// is read as a stream.
    ///
    /// Messages the backup lacks are stored through one commit, as a
    /// sync's; those it holds are left as stored; doubles in the file are
    /// taken once; documents are stored only where the backup has none.
    /// Any file that is broken or hostile (not JSON, not oldest first, a
    /// message without id or ts, a message over 16 MiB, another
    /// personality's history) is refused and nothing changes. The next sync
    /// then compares the imported history with the service's once (an
    /// audit): its copy replaces an imported message that differs (the
    /// earlier script broke multi-byte text into U+FFFD), the imported
    /// one kept as an earlier version; messages the service no longer has
    /// are kept.
    ///
    /// Exit 0 when imported, 1 when refused, 2 for a usage error (no such
    /// files, a daemon or sync holding the data directory).
    Import {
        /// Personality name (slug).
        name: PersonalitySlug,
        /// The earlier script's directory or chat history file.
        path: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate the config and print it with defaults filled in, secrets redacted.
    ///
    /// Then checks, without the network, what a run needs: the session
    /// cookie readable and plausible (never shown), the data and archive
    /// directories writable or creatable, the log directory creatable, all
    /// by the user running check-config (run it as the service's user).
    /// Each check prints a line on standard error. Nothing is left behind.
    ///
    /// Exit 0 when all is well, 2 when the config or a check fails; with
    /// --online, then as `chatkeep cookie check`.
    CheckConfig {
        /// Also ask the service which account the cookie logs in as (`cookie check`).
        #[arg(long)]
        online: bool,
    },
    /// Offline demo: a full and an incremental backup against a built-in fake service.
    Demo {
        /// Where to put the demo's config, data and exports (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print a shell completion script.
    ///
    /// For bash: `chatkeep completions bash > /etc/bash_completion.d/chatkeep`
    /// (or ~/.local/share/bash-completion/completions/chatkeep); for zsh,
    /// into a directory on $fpath as `_chatkeep`; for fish, into
    /// ~/.config/fish/completions/chatkeep.fish.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page, chatkeep(1), in roff.
    ///
    /// `chatkeep man | man -l -` reads it; `chatkeep man --dir DIR` writes
    /// one page per command (chatkeep.1, chatkeep-sync.1, ...) into DIR,
    /// such as /usr/local/share/man/man1.
    Man {
        /// Write every page into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Serve a read-only web view of the backup, on loopback by default.
    ///
    /// An overview of every personality (last sync, outcome, next run, messages,
    /// snapshots, remote copies, what failed and what to do), each personality's
    /// documents and activity chart, and its chat history a page at a time with a
    /// jump to any date. /health answers 200 when `chatkeep status` would exit 0
    /// (else 503) and /metrics the Prometheus metrics. It only reads the data
    /// directory, never the cookie or the network, and runs beside the daemon.
    /// Prints the address on the first line of standard output.
    Serve(commands::serve::Args),
    /// Run the built-in fake service on loopback, to try a config without an account.
    ///
    /// Prints its base URL (http://127.0.0.1:PORT) on the first line of
    /// standard output, then serves one generated personality until Ctrl-C
    /// or SIGTERM. Point a config's base_url at that URL (jargon =
    /// "shapes"), and its cookie_file at a file holding the --token given
    /// here; then `check-config --online`, `sync`, `run`, `status`,
    /// `export` and the rest work as against the service. See "Trying it
    /// out" in the README.
    ServeFake(commands::serve_fake::Args),
}

impl Command {
    /// Whether the command has a config to log by: all but the demo (which
    /// writes its own), the fake service, and the completions and man page
    /// (generated from the definitions alone).
    fn reads_config(&self) -> bool {
        !matches!(
            self,
            Command::Demo { .. } | Command::ServeFake(_) | Command::Completions { .. } | Command::Man { .. }
        )
    }
}

#[derive(Debug, Subcommand)]
enum CookieAction {
    /// Check a session cookie with the service, and save it to cookie_file (mode 0600).
    ///
    /// Reads the cookie, the bare token or name=value, from a prompt that
    /// does not echo, or from the first line of standard input when that is
    /// not a terminal. Then asks the service once which account it logs in
    /// as. Exit 3 if the service refuses it: nothing is saved, the previous
    /// cookie stays. Exit 1 if it could not be checked: it is saved, unverified.
    Set,
    /// Check the session cookie a sync would send, and print its account.
    Check,
}

fn main() -> ExitCode {
    // Before anything is created: every file and directory private (0600,
    // 0700), including those of crates such as the log file appender.
    chatkeep::store::fsio::private_umask();
    chatkeep::store::fsio::survive_file_size_limit();
    let cli = Cli::parse();
    let location = ConfigLocation::find(cli.config.clone());
    // The demo tells its own story; its log shows only what went wrong.
    let quiet = cli.quiet || (matches!(cli.command, Command::Demo { .. }) && cli.verbose == 0);
    // Every command logs as its config's [log] says: read it first. Its
    // errors wait for the command, which reports them (status and
    // check-config read the file themselves, and explain a bad one).
    let mut loaded = cli
        .command
        .reads_config()
        .then(|| commands::load_config(&location));
    let log_config = loaded.as_ref().and_then(|c| c.as_ref().ok()).map(|c| &c.log);
    let unusable = match cli.command {
        Command::Status { .. } | Command::Export { .. } | Command::Search { .. } => {
            logging::UnusableDir::Skip
        }
        _ => logging::UnusableDir::Warn,
    };
    let _log = logging::init(log_config, cli.verbose, quiet, unusable);
    if let Some(Ok(config)) = &loaded {
        for warning in config.load_warnings() {
            tracing::warn!("{warning}");
        }
    }
    let mut config = || loaded.take().unwrap_or_else(|| commands::load_config(&location));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return Fatal::usage(format!("cannot start the async runtime: {e}")).report(),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run => {
                let config = config()?;
                chatkeep::daemon::run(config).await
            }
            Command::Sync {
                names,
                all,
                lock_wait,
            } => {
                let config = config()?;
                commands::sync::run(
                    &config,
                    &names,
                    commands::sync::Selection {
                        owned: all || config.discover.owned,
                        recent: config.discover.recent,
                    },
                    lock_wait.unwrap_or_default(),
                )
                .await
            }
            Command::Export {
                name,
                what,
                format,
                output,
                since,
                until,
                gap,
                min_messages,
                max_chars,
                png,
                upstream_only,
                revisions,
                media,
            } => {
                if png.is_some() && format != Format::CharacterCard {
                    return Err(Fatal::usage("--png applies to --format character-card only"));
                }
                if format.training().is_none() && max_chars.is_some() {
                    return Err(Fatal::usage(
                        "--max-chars applies to --format openai and sharegpt only",
                    ));
                }
                if !format.splits() && (gap.is_some() || min_messages.is_some()) {
                    return Err(Fatal::usage(
                        "--gap and --min-messages apply to --format conversations, sillytavern, \
                         openai and sharegpt only (those split into conversations)",
                    ));
                }
                if revisions && format != Format::Jsonl {
                    return Err(Fatal::usage(
                        "--revisions applies to --format jsonl only (one line per version)",
                    ));
                }
                if media == MediaLinks::Local
                    && !matches!(format, Format::Json | Format::Jsonl | Format::Markdown)
                {
                    return Err(Fatal::usage(
                        "--media local applies to --format json, jsonl and markdown",
                    ));
                }
                if let (Some(since), Some(before)) = (since, until)
                    && since >= before
                {
                    return Err(Fatal::usage("--since is after --until: nothing to export"));
                }
                let defaults = Split::default();
                let options = ExportOptions {
                    split: Split {
                        gap: gap.unwrap_or(defaults.gap),
                        min_messages: min_messages.unwrap_or(format.default_min_messages()),
                    },
                    upstream_only,
                    revisions,
                    period: Period { since, before: until },
                };
                let config = config()?;
                let max_chars = max_chars.map_or(chatkeep::export::training::DEFAULT_MAX_CHARS, |n| {
                    usize::try_from(n).unwrap_or(usize::MAX)
                });
                let extras = commands::export::Extras {
                    media,
                    max_chars,
                    png,
                };
                commands::export::run_with(
                    &config,
                    &name,
                    &what,
                    format,
                    &options,
                    &extras,
                    output.as_deref(),
                )
            }
            Command::Audit { names, repair, json } => {
                let config = config()?;
                commands::audit::run(&config, &names, repair, json).await
            }
            Command::Archive { names, lock_wait } => {
                let config = config()?;
                commands::archive::run_archive(&config, &names, lock_wait.unwrap_or_default()).await
            }
            Command::Prune {
                names,
                dry_run,
                remote: Some(remote),
            } => {
                let config = config()?;
                commands::remote::prune(&config, &names, &remote, dry_run).await
            }
            Command::Prune {
                names,
                dry_run,
                remote: None,
            } => {
                let config = config()?;
                commands::archive::prune(&config, &names, dry_run)
            }
            Command::Verify {
                names,
                latest,
                identity,
                remote: Some(remote),
                read_data,
            } if !latest && identity.is_none() => {
                let config = config()?;
                commands::remote::verify(&config, &names, &remote, read_data.unwrap_or(0)).await
            }
            Command::Verify { remote: Some(_), .. } => Err(commands::Fatal::usage(
                "verify --remote checks sizes and SHA-256 only; --latest and --identity are for local snapshots",
            )),
            Command::Verify {
                names,
                latest,
                identity,
                remote: None,
                ..
            } => {
                let config = config()?;
                commands::archive::verify(&config, &names, latest, identity.as_deref())
            }
            Command::Push { names, remote } => {
                let config = config()?;
                commands::remote::push(&config, &names, &remote).await
            }
            Command::Restore {
                name,
                snapshot,
                to,
                rebuild,
                force,
                identity,
                remote,
            } => {
                let config = config()?;
                match (to, remote.as_deref()) {
                    _ if rebuild => {
                        commands::rebuild::run(&config, &name, &snapshot, remote.as_deref(), force, identity.as_deref())
                            .await
                    }
                    (Some(to), Some(remote)) => {
                        commands::remote::restore(&config, &name, remote, &snapshot, &to, force, identity.as_deref())
                            .await
                    }
                    (Some(to), None) => {
                        commands::archive::restore(&config, &name, &snapshot, &to, force, identity.as_deref())
                    }
                    (None, _) => unreachable!("clap requires --to without --rebuild"),
                }
            }
            Command::Cookie { action } => {
                let config = config()?;
                match action {
                    CookieAction::Set => commands::cookie::set(&config).await,
                    CookieAction::Check => commands::cookie::check(&config).await,
                }
            }
            Command::Status { json, data_dir } => commands::status::run(&location, data_dir.as_deref(), json),
            Command::Forget { name, yes } => {
                let config = config()?;
                commands::forget::run(&config, &name, yes)
            }
            Command::Backup {
                names,
                all,
                print_config,
            } => commands::backup::run(&names, all, print_config).await,
            Command::Import { name, path, json } => {
                let config = config()?;
                commands::import::run(&config, &name, &path, json)
            }
            Command::Search {
                query,
                personality,
                since,
                until,
                json,
                limit,
                sort,
            } => {
                let config = config()?;
                let args = commands::search::SearchArgs {
                    query: query.join(" "),
                    personalities: personality,
                    since,
                    until,
                    json,
                    limit,
                    sort,
                };
                commands::search::run(&config, &args)
            }
            Command::Reindex { names } => {
                let config = config()?;
                commands::search::reindex(&config, &names)
            }
            Command::CheckConfig { online } => commands::check_config::run(&location, online).await,
            Command::Demo { dir } => commands::demo::run(dir).await,
            Command::ServeFake(args) => commands::serve_fake::run(args).await,
            Command::Serve(args) => {
                let config = config()?;
                commands::serve::run(&location, config, args).await
            }
            // Generated from the definitions above; no config needed.
            Command::Completions { shell } => commands::docs::completions(Cli::command(), shell),
            Command::Man { dir } => commands::docs::man(Cli::command(), dir.as_deref()),
        }
    });
    let code = result.unwrap_or_else(|fatal| fatal.report());
    logging::log_peak_memory();
    code
}
