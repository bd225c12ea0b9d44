//! `chatkeep audit`: each personality's whole history on the service
//! compared with its backup, as a table or a JSON report.

use std::process::ExitCode;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::sync::cancel_on_signals;
use super::{Fatal, build_client, exit};
use crate::config::{Config, PersonalitySlug};
use crate::progress::SyncProgress;
use crate::status::Outcome;
use crate::sync::audit::AuditReport;
use crate::sync::{AccountCache, AuditOutcome, SyncContext, audit_personality};

/// Audits the named personalities (every configured one without names).
pub async fn run(
    config: &Config,
    names: &[PersonalitySlug],
    repair: bool,
    json: bool,
) -> Result<ExitCode, Fatal> {
    let cancel = cancel_on_signals();
    let outcomes = audit_all(config, names, repair, &cancel, !json).await?;
    if json {
        println!("{}", render_json(&outcomes, repair));
    } else {
        print!("{}", render_table(&outcomes, repair));
    }
    Ok(ExitCode::from(exit_code(&outcomes)))
}

/// Audits each personality in turn; an auth failure or a bot wall stops
/// the rest. Shows progress on a terminal when `progress` says so.
pub async fn audit_all(
    config: &Config,
    names: &[PersonalitySlug],
    repair: bool,
    cancel: &CancellationToken,
    progress: bool,
) -> Result<Vec<AuditOutcome>, Fatal> {
    let store = super::open_store(config)?;
    let client = build_client(config, &store)?;
    let chosen: Vec<PersonalitySlug> = if names.is_empty() {
        config.personalities.iter().map(|p| p.name.clone()).collect()
    } else {
        names.to_vec()
    };
    if chosen.is_empty() {
        return Err(Fatal::usage(format!(
            "no personality to audit: name one, or add a [[personality]] to {}",
            config.source.display()
        )));
    }
    let account = AccountCache::default();
    let ctx = SyncContext::new(config, &client, &store, &account, cancel);
    let mut outcomes = Vec::new();
    for name in chosen {
        let mut bar = progress.then(|| SyncProgress::new(name.as_str()));
        let outcome = audit_personality(&ctx, name.as_str(), repair, |p| {
            if let Some(bar) = &mut bar {
                bar.page(p);
            }
        })
        .await;
        if let Some(bar) = bar {
            bar.finish();
        }
        log_outcome(&outcome);
        let stop = outcome.halt.is_some() || outcome.cancelled;
        outcomes.push(outcome);
        if stop {
            break;
        }
    }
    Ok(outcomes)
}

/// One log line per personality: what differed and what was repaired.
pub fn log_outcome(outcome: &AuditOutcome) {
    match &outcome.result {
        Ok(r) if r.differs() => tracing::warn!(
            personality = outcome.name,
            upstream = r.upstream,
            missing = r.missing,
            changed = r.changed,
            gone_upstream = r.gone_upstream,
            back_upstream = r.back_upstream,
            holes = r.hole_count,
            repaired = r.repaired.is_some(),
            "audit: the backup and the service differ"
        ),
        Ok(r) => tracing::info!(
            personality = outcome.name,
            upstream = r.upstream,
            stored = r.stored,
            "audit: the backup holds everything the service holds"
        ),
        Err(e) => tracing::error!(personality = outcome.name, error = %e, "audit failed"),
    }
}

/// 0: nothing differs; 1: something differs (repaired or not) or an audit
/// failed; 3: the service refused the session.
pub fn exit_code(outcomes: &[AuditOutcome]) -> u8 {
    if outcomes.iter().any(|o| o.halt == Some(Outcome::AuthExpired)) {
        exit::AUTH
    } else if outcomes
        .iter()
        .all(|o| o.result.as_ref().is_ok_and(|r| !r.differs()))
    {
        exit::OK
    } else {
        exit::FAILED
    }
}

/// The table: one row per personality, then the holes and errors.
pub fn render_table(outcomes: &[AuditOutcome], repair: bool) -> String {
    let header = [
        "personality",
        "upstream",
        "stored",
        "missing",
        "changed",
        "gone",
        "back",
        "holes",
        "result",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    let mut notes = Vec::new();
    for o in outcomes {
        match &o.result {
            Ok(r) => {
                let result = match (r.differs(), &r.repaired) {
                    (false, _) => "same".to_owned(),
                    (true, Some(_)) => "differs, repaired".to_owned(),
                    (true, None) if repair => "differs".to_owned(),
                    (true, None) => "differs (--repair adopts it)".to_owned(),
                };
                rows.push(vec![
                    o.name.clone(),
                    r.upstream.to_string(),
                    r.stored.to_string(),
                    r.missing.to_string(),
                    r.changed.to_string(),
                    r.gone_upstream.to_string(),
                    r.back_upstream.to_string(),
                    r.hole_count.to_string(),
                    result,
                ]);
                for hole in &r.holes {
                    notes.push(format!(
                        "{}: hole of {} message{} from {} to {}",
                        o.name,
                        hole.messages,
                        if hole.messages == 1 { "" } else { "s" },
                        hole.first,
                        hole.last
                    ));
                }
                if r.hole_count > r.holes.len() as u64 {
                    notes.push(format!(
                        "{}: and {} more holes",
                        o.name,
                        r.hole_count - r.holes.len() as u64
                    ));
                }
                if r.marked_gone > 0 {
                    let messages = if r.marked_gone == 1 {
                        "message was"
                    } else {
                        "messages were"
                    };
                    notes.push(format!(
                        "{}: {} stored {messages} already marked gone upstream",
                        o.name, r.marked_gone
                    ));
                }
                if let Some(fixed) = &r.repaired {
                    notes.push(format!(
                        "{}: repaired: {} stored, {} revised, {} marked gone, {} back",
                        o.name, fixed.stored, fixed.revised, fixed.marked, fixed.unmarked
                    ));
                }
            }
            Err(e) => {
                let mut row = vec![o.name.clone()];
                row.extend(std::iter::repeat_n("-".to_owned(), header.len() - 2));
                row.push("FAILED".to_owned());
                rows.push(row);
                notes.push(format!("{}: {}", o.name, crate::escape::controls(e)));
            }
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                if c == 0 || c == row.len() - 1 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for note in notes {
        out.push_str(&note);
        out.push('\n');
    }
    out
}

/// The machine-readable report.
pub fn render_json(outcomes: &[AuditOutcome], repair: bool) -> String {
    #[derive(Serialize)]
    struct Row<'a> {
        personality: &'a str,
        differs: Option<bool>,
        #[serde(flatten)]
        report: Option<&'a AuditReport>,
        error: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Report<'a> {
        repair: bool,
        personalities: Vec<Row<'a>>,
    }
    let report = Report {
        repair,
        personalities: outcomes
            .iter()
            .map(|o| Row {
                personality: &o.name,
                differs: o.result.as_ref().ok().map(AuditReport::differs),
                report: o.result.as_ref().ok(),
                error: o.result.as_ref().err().map(String::as_str),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
