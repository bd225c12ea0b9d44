//! The pages, rendered on the server from what the store and the status
//! files hold. Each reads; none writes, locks or asks the service.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::html::{escape, page, time, url_component};
use super::transcript::{Cursor, Page};
use crate::commands::status::{Entry, Report};
use crate::export::turn::Turn;
use crate::status::Outcome;
use crate::store::Entry as HistoryEntry;

/// The documents a personality page links, by URL part, title and the
/// suffix of the stored file.
pub const DOCUMENTS: [(&str, &str, &str); 5] = [
    ("profile", "Profile", ""),
    ("memories", "Memories", "_memories"),
    ("knowledge", "Knowledge", "_knowledge"),
    ("training", "Training", "_training"),
    (
        "user-personalization",
        "User personalization",
        "_user_personalization",
    ),
];

fn outcome_cell(entry: &Entry) -> String {
    match entry.outcome {
        None => "<span class=\"muted\">never synced</span>".to_owned(),
        Some(o) => {
            let class = if entry.healthy { "ok" } else { "bad" };
            format!("<span class=\"{class}\">{}</span>", o.as_str())
        }
    }
}

fn maybe_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "<span class=\"muted\">–</span>".to_owned(), time)
}

/// What to do about a failed sync, by how it failed.
fn advice(outcome: Option<Outcome>) -> &'static str {
    match outcome {
        Some(Outcome::AuthExpired) => {
            "The service refused the session cookie: log in again in the browser and run \
             `chatkeep cookie set`."
        }
        Some(Outcome::BotWall) => {
            "A bot wall answered instead of the service: wait, or set a cookie from a browser session \
             that passed it."
        }
        Some(Outcome::RateLimited) => "The service kept refusing for the rate: the next run tries again.",
        _ => "See `chatkeep status` and the log (`journalctl -u chatkeep`); the next run tries again.",
    }
}

/// The overview: every personality at a glance, the remotes, what failed.
pub fn overview(report: &Report) -> String {
    let mut body = String::new();
    let verdict = if report.healthy {
        "<p class=\"ok\" id=\"health\">All backups are healthy.</p>"
    } else {
        "<p class=\"bad\" id=\"health\">Some backups need attention.</p>"
    };
    body.push_str("<h1>Backups</h1>\n");
    body.push_str(verdict);
    if let Some(problem) = &report.config_error {
        let _ = write!(
            body,
            "<div class=\"problem\"><p>The config file {} could not be loaded: {}</p><p>Run \
             <code>chatkeep check-config</code>.</p></div>",
            escape(&problem.path.display().to_string()),
            escape(&problem.message)
        );
    }
    match &report.daemon {
        Some(d) if d.running => {
            let _ = write!(
                body,
                "<p>The daemon runs (pid {}, since {}).</p>",
                d.pid,
                time(d.started)
            );
        }
        _ => body.push_str("<p class=\"muted\">No daemon runs on this data directory.</p>"),
    }
    body.push_str(
        "<table id=\"personalities\"><thead><tr><th>Personality</th><th>Last sync</th><th>Outcome</th>\
         <th>Next run</th><th>Messages</th><th>Beginning</th><th>Last snapshot</th></tr></thead><tbody>\n",
    );
    for e in &report.personalities {
        let name = escape(&e.name);
        let _ = writeln!(
            body,
            "<tr><td><a href=\"/p/{}\">{name}</a>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            url_component(&e.name),
            if e.configured {
                ""
            } else {
                " <span class=\"tag\">not configured</span>"
            },
            maybe_time(e.last_run),
            outcome_cell(e),
            if e.running {
                "running now".to_owned()
            } else {
                maybe_time(e.next_run.or(e.retry_at))
            },
            e.messages.map_or_else(|| "–".to_owned(), |n| n.to_string()),
            if e.beginning_confirmed_at.is_some() {
                "<span class=\"ok\">confirmed</span>"
            } else {
                "<span class=\"muted\">not confirmed</span>"
            },
            maybe_time(e.last_archive),
        );
    }
    body.push_str("</tbody></table>\n");
    for e in report.personalities.iter().filter(|e| !e.healthy && e.configured) {
        let _ = write!(
            body,
            "<div class=\"problem\"><p><strong>{}</strong>: {}</p><p>{}</p></div>",
            escape(&e.name),
            escape(e.error.as_deref().unwrap_or("the last sync did not succeed")),
            escape(advice(e.outcome))
        );
    }
    if !report.remotes.is_empty() {
        body.push_str(
            "<h2>Offsite copies</h2><table id=\"remotes\"><thead><tr><th>Remote</th><th>Last upload</th>\
             <th>Snapshots</th><th>Last failure</th></tr></thead><tbody>\n",
        );
        for r in &report.remotes {
            let failure = match (&r.status.last_failure, &r.status.last_error) {
                (Some(at), Some(error)) if r.status.failing() => {
                    format!("<span class=\"bad\">{}: {}</span>", time(*at), escape(error))
                }
                (Some(at), _) => time(*at),
                _ => "–".to_owned(),
            };
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{failure}</td></tr>",
                escape(&r.name),
                maybe_time(r.status.last_success),
                r.status
                    .snapshots
                    .map_or_else(|| "–".to_owned(), |n| n.to_string()),
            );
        }
        body.push_str("</tbody></table>\n");
    }
    page("Backups", &body)
}

/// A personality's page: its state, the documents, the activity chart.
pub fn personality(
    entry: Option<&Entry>,
    name: &str,
    documents: &[(&str, &str, bool)],
    chart: &str,
) -> String {
    let mut body = format!("<h1>{}</h1>\n", escape(name));
    if let Some(e) = entry {
        let _ = write!(
            body,
            "<p>Last sync {} ({}); {} messages{}{}.</p>",
            maybe_time(e.last_run),
            outcome_cell(e),
            e.messages.unwrap_or(0),
            e.revised
                .filter(|n| *n > 0)
                .map_or_else(String::new, |n| format!(", {n} revised")),
            e.deleted_upstream
                .filter(|n| *n > 0)
                .map_or_else(String::new, |n| format!(", {n} gone upstream")),
        );
    }
    let base = format!("/p/{}", url_component(name));
    let _ = write!(
        body,
        "<p><a href=\"{base}/chat\">Read the chat history</a></p>\n<form action=\"{base}/chat\" method=\"get\">\
         <label>Jump to a date <input type=\"date\" name=\"date\"></label> <button>Go</button></form>\n\
         <h2>Activity</h2>\n{chart}\n<h2>Documents</h2>\n<ul>"
    );
    for (part, title, present) in documents {
        if *present {
            let _ = write!(body, "<li><a href=\"{base}/{part}\">{}</a></li>", escape(title));
        } else {
            let _ = write!(body, "<li class=\"muted\">{} (not backed up)</li>", escape(title));
        }
    }
    body.push_str("</ul>\n");
    page(name, &body)
}

/// A document (profile, memories, ...) as nested lists of its fields.
pub fn document(name: &str, title: &str, value: &serde_json::Value) -> String {
    let mut body = format!(
        "<p><a href=\"/p/{}\">{}</a></p><h1>{}</h1>\n",
        url_component(name),
        escape(name),
        escape(title)
    );
    json_html(value, &mut body, 0);
    page(&format!("{name}: {title}"), &body)
}

/// Deeper than this, a document is shown as its JSON text.
const MAX_DEPTH: usize = 12;

fn json_html(value: &serde_json::Value, out: &mut String, depth: usize) {
    use serde_json::Value;
    if depth > MAX_DEPTH {
        let _ = write!(out, "<code>{}</code>", escape(&value.to_string()));
        return;
    }
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push_str("<dl class=\"doc\">");
            for (k, v) in map {
                let _ = write!(out, "<dt>{}</dt><dd>", escape(k));
                json_html(v, out, depth + 1);
                out.push_str("</dd>");
            }
            out.push_str("</dl>");
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("<ol>");
            for v in items {
                out.push_str("<li>");
                json_html(v, out, depth + 1);
                out.push_str("</li>");
            }
            out.push_str("</ol>");
        }
        Value::String(s) => out.push_str(&escape(s)),
        Value::Null => out.push_str("<span class=\"muted\">none</span>"),
        other => out.push_str(&escape(&other.to_string())),
    }
}

/// The anchor of a message in a transcript page.
pub fn anchor(entry: &HistoryEntry) -> String {
    let id = entry
        .key
        .as_ref()
        .map_or_else(String::new, |k| k.id.as_str().to_owned());
    format!("m-{}", url_component(&id))
}

/// One message: who said what, when, and what became of it.
fn message_html(entry: &HistoryEntry, out: &mut String) {
    let turn = Turn::parse(&entry.message, 0).ok();
    let gone = entry.deleted_upstream_at();
    let _ = write!(
        out,
        "<article class=\"message{}\" id=\"{}\"><div class=\"meta\">",
        if gone.is_some() { " gone" } else { "" },
        anchor(entry)
    );
    if let Some(t) = turn
        .as_ref()
        .and_then(|t| t.ts)
        .and_then(|ts| DateTime::<Utc>::from_timestamp_millis((ts.as_f64() * 1000.0) as i64))
    {
        out.push_str(&time(t));
    }
    if let Some(at) = gone {
        let _ = write!(
            out,
            "<span class=\"tag\">gone upstream since {}</span>",
            escape(at)
        );
    }
    if !entry.earlier().is_empty() {
        let _ = write!(
            out,
            "<span class=\"tag\">revised: {} earlier version{}</span>",
            entry.earlier().len(),
            if entry.earlier().len() == 1 { "" } else { "s" }
        );
    }
    out.push_str("</div>");
    match turn {
        Some(turn) => {
            if let Some(user) = &turn.user {
                let _ = write!(
                    out,
                    "<p class=\"text user\"><strong>You:</strong> {}</p>",
                    escape(user)
                );
            }
            if let Some(url) = &turn.attachment {
                let _ = write!(out, "<p class=\"muted\">attachment: {}</p>", escape(url));
            }
            if let Some(reply) = &turn.reply {
                let _ = write!(
                    out,
                    "<p class=\"text reply\"><strong>Reply:</strong> {}</p>",
                    escape(reply)
                );
            }
            if !turn.regenerated.is_empty() {
                out.push_str("<details><summary>Regenerated replies</summary><ol>");
                for r in &turn.regenerated {
                    let _ = write!(out, "<li class=\"text\">{}</li>", escape(r));
                }
                out.push_str("</ol></details>");
            }
        }
        None => {
            let _ = write!(out, "<pre class=\"text\">{}</pre>", escape(&entry.message));
        }
    }
    if !entry.earlier().is_empty() {
        out.push_str("<details><summary>Earlier versions</summary><ol>");
        for v in entry.earlier() {
            let text = Turn::parse(&v.message, 0)
                .ok()
                .map(|t| {
                    [t.user, t.reply]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_else(|| v.message.clone());
            let _ = write!(
                out,
                "<li><span class=\"meta\">until {}</span><div class=\"text\">{}</div></li>",
                escape(&v.superseded_at),
                escape(&text)
            );
        }
        out.push_str("</ol></details>");
    }
    out.push_str("</article>\n");
}

/// A page of the transcript, with links to the pages beside it.
pub fn transcript(name: &str, page_: &Page) -> String {
    let base = format!("/p/{}/chat", url_component(name));
    let mut body = format!(
        "<p><a href=\"/p/{}\">{}</a></p><h1>Chat history</h1>\n<form action=\"{base}\" method=\"get\">\
         <label>Jump to a date <input type=\"date\" name=\"date\"></label> <button>Go</button></form>\n",
        url_component(name),
        escape(name)
    );
    let pager = |body: &mut String| {
        body.push_str("<nav class=\"pager\">");
        match (&page_.first, page_.has_older) {
            (Some(first), true) => {
                let _ = write!(
                    body,
                    "<a rel=\"prev\" href=\"{base}?before={}\">Older</a>",
                    first.query()
                );
            }
            _ => body.push_str("<span class=\"muted\">Beginning of the history</span>"),
        }
        match &page_.next {
            Some(next) => {
                let _ = write!(
                    body,
                    "<a rel=\"next\" href=\"{base}?at={}\">Newer</a>",
                    next.query()
                );
            }
            None => body.push_str("<span class=\"muted\">Newest message</span>"),
        }
        body.push_str("</nav>\n");
    };
    pager(&mut body);
    if page_.entries.is_empty() {
        body.push_str("<p class=\"muted\">No messages here.</p>");
    }
    for entry in &page_.entries {
        message_html(entry, &mut body);
    }
    pager(&mut body);
    page(&format!("{name}: chat history"), &body)
}

/// A cursor from a link's `at`/`before` value and `skip`.
pub fn cursor(ts: &str, skip: Option<u64>) -> Option<Cursor> {
    let ts = crate::message::Ts::new(ts.parse().ok()?)?;
    Some(Cursor {
        ts,
        skip: skip.unwrap_or(0),
    })
}

/// A page with only a message, for errors and refusals.
pub fn message_page(title: &str, text: &str) -> String {
    page(
        title,
        &format!("<h1>{}</h1><p>{}</p>", escape(title), escape(text)),
    )
}

/// The form a browser logs in with, when a token protects the server.
pub fn login(failed: bool) -> String {
    page(
        "Log in",
        &format!(
            "<h1>Log in</h1>{}<form method=\"post\" action=\"/login\"><label>Token \
             <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required></label> \
             <button>Log in</button></form>",
            if failed {
                "<p class=\"bad\">That is not the token.</p>"
            } else {
                ""
            }
        ),
    )
}

/// The search page: a form, and the hits of its query, each linking to
/// its message in its place in the transcript.
pub fn search(
    q: &str,
    results: Option<Result<&crate::search::SearchResults, String>>,
    sort_relevance: bool,
) -> String {
    let mut body = format!(
        "<h1>Search</h1>\n<form action=\"/search\" method=\"get\"><input type=\"search\" name=\"q\" value=\"{}\" \
         aria-label=\"Search\" autofocus> <label><input type=\"checkbox\" name=\"sort\" value=\"relevance\"{}> best \
         match first</label> <button>Search</button></form>\n",
        escape(q),
        if sort_relevance { " checked" } else { "" }
    );
    match results {
        None => body.push_str(
            "<p class=\"muted\">Words, <code>\"a phrase\"</code>, <code>a OR b</code>, <code>-word</code>, \
             <code>role:user</code>.</p>",
        ),
        Some(Err(e)) => {
            let _ = write!(body, "<p class=\"bad\" id=\"search-error\">{}</p>", escape(&e));
        }
        Some(Ok(results)) => {
            let _ = write!(
                body,
                "<p id=\"hits\">{} match{}</p>\n<ol class=\"hits\">",
                results.total,
                if results.total == 1 { "" } else { "es" }
            );
            for hit in &results.hits {
                let id = match serde_json::from_str::<serde_json::Value>(&hit.id) {
                    Ok(serde_json::Value::String(s)) => s,
                    _ => hit.id.clone(),
                };
                let link = format!(
                    "/p/{}/chat?at={}&amp;skip=0#m-{}",
                    url_component(&hit.personality),
                    hit.place,
                    url_component(&id)
                );
                let mut snippet = String::new();
                let mut at = 0;
                let text = &hit.snippet.text;
                for range in &hit.snippet.highlighted {
                    if range.start < at
                        || range.end > text.len()
                        || !text.is_char_boundary(range.start)
                        || !text.is_char_boundary(range.end)
                    {
                        continue;
                    }
                    snippet.push_str(&escape(&text[at..range.start]));
                    let _ = write!(snippet, "<mark>{}</mark>", escape(&text[range.clone()]));
                    at = range.end;
                }
                snippet.push_str(&escape(&text[at..]));
                let mut tags = String::new();
                match hit.version {
                    crate::search::VersionKind::Current => {}
                    crate::search::VersionKind::Earlier => {
                        tags.push_str("<span class=\"tag\">earlier version</span>")
                    }
                    crate::search::VersionKind::Regenerated => {
                        tags.push_str("<span class=\"tag\">regenerated reply</span>")
                    }
                }
                if hit.deleted_upstream_at.is_some() {
                    tags.push_str("<span class=\"tag\">gone upstream</span>");
                }
                let _ = writeln!(
                    body,
                    "<li class=\"hit\"><div class=\"meta\"><a href=\"/p/{}\">{}</a> · {} · {}{tags}</div>\
                     <a class=\"open\" href=\"{link}\">{snippet}</a></li>",
                    url_component(&hit.personality),
                    escape(&hit.personality),
                    escape(hit.role.as_str()),
                    escape(&hit.time),
                );
            }
            body.push_str("</ol>");
        }
    }
    page(&format!("Search: {q}"), &body)
}
