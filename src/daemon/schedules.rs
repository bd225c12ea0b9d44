//! Which scheduler jobs a config wants, and what a reload changes in them.
//!
//! A reload keeps every job whose schedule it leaves as it was, so an
//! `interval` countdown or a cron job's next tick survives any number of
//! reloads; only the jobs whose schedule changed, appeared or went away are
//! replaced. The same comparison, made on the two configs, is what the
//! "config reloaded" line reports.

use std::collections::BTreeMap;
use std::fmt;

use crate::config::{Config, DaemonConfig, Schedule, format_duration};

/// What a scheduler job starts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Fires {
    /// Syncs: of one personality with its own schedule, or (`None`) of
    /// those on the default schedule, read from the config at each tick.
    Sync(Option<String>),
    /// Snapshots of every configured personality (`archive_schedule`).
    Archive,
    /// Audits of every configured personality (`audit_schedule`).
    Audit,
}

impl fmt::Display for Fires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fires::Sync(None) => f.write_str("default"),
            Fires::Sync(Some(name)) => f.write_str(name),
            Fires::Archive => f.write_str("archive"),
            Fires::Audit => f.write_str("audit"),
        }
    }
}

/// The jobs `config` wants, each with its schedule.
pub(super) fn wanted(config: &Config) -> BTreeMap<Fires, Schedule> {
    let mut wanted = BTreeMap::new();
    wanted.insert(Fires::Sync(None), config.daemon.schedule.clone());
    for p in &config.personalities {
        if let Some(cron) = &p.schedule {
            wanted.insert(
                Fires::Sync(Some(p.name.to_string())),
                Schedule::Cron(cron.clone()),
            );
        }
    }
    if let Some(cron) = &config.daemon.archive_schedule {
        wanted.insert(Fires::Archive, Schedule::Cron(cron.clone()));
    }
    if let Some(cron) = &config.daemon.audit_schedule {
        wanted.insert(Fires::Audit, Schedule::Cron(cron.clone()));
    }
    wanted
}

/// A schedule as the config says it: the cron expression, or `every 30s`.
pub(super) fn describe(schedule: &Schedule) -> String {
    match schedule {
        Schedule::Cron(expr) => expr.clone(),
        Schedule::Interval(every) => format!("every {}", format_duration(*every)),
    }
}

/// What a reload changes, for its log line.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Changes {
    /// Personalities in the new config only, and in the old one only.
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Jobs whose schedule changed, appeared or went away, named as
    /// [`Fires`] displays them (`default`, a personality, `archive`,
    /// `audit`). A personality added or removed with its own schedule is
    /// listed above, not here.
    pub rescheduled: Vec<String>,
    /// Tables whose other settings changed (`[rate_limit]`, ...).
    pub settings: Vec<&'static str>,
    /// Whether the session cookie read on reload differs from the running one.
    pub cookie: bool,
}

impl Changes {
    /// Compares the running config with the one read on reload.
    pub fn between(old: &Config, new: &Config) -> Changes {
        let names =
            |c: &Config| -> Vec<String> { c.personalities.iter().map(|p| p.name.to_string()).collect() };
        let (old_names, new_names) = (names(old), names(new));
        let added: Vec<String> = new_names
            .iter()
            .filter(|n| !old_names.contains(n))
            .cloned()
            .collect();
        let removed: Vec<String> = old_names
            .iter()
            .filter(|n| !new_names.contains(n))
            .cloned()
            .collect();
        let (old_jobs, new_jobs) = (wanted(old), wanted(new));
        let mut rescheduled: Vec<String> = old_jobs
            .keys()
            .chain(new_jobs.keys().filter(|k| !old_jobs.contains_key(k)))
            .filter(|fires| old_jobs.get(fires) != new_jobs.get(fires))
            .filter(|fires| match fires {
                Fires::Sync(Some(name)) => !added.contains(name) && !removed.contains(name),
                _ => true,
            })
            .map(ToString::to_string)
            .collect();
        rescheduled.sort();
        rescheduled.dedup();
        Changes {
            added,
            removed,
            rescheduled,
            settings: changed_tables(old, new),
            cookie: false,
        }
    }

    /// Whether any job's schedule is to be replaced.
    pub fn touches_schedules(&self) -> bool {
        !self.rescheduled.is_empty() || !self.added.is_empty() || !self.removed.is_empty()
    }
}

/// The tables whose settings, schedules aside, differ.
fn changed_tables(old: &Config, new: &Config) -> Vec<&'static str> {
    let unscheduled = |c: &Config| {
        let mut daemon = c.daemon.clone();
        daemon.schedule = DaemonConfig::default().schedule;
        daemon.archive_schedule = None;
        daemon.audit_schedule = None;
        daemon
    };
    // Personalities' own settings, without their names and schedules,
    // for those in both.
    let kept = |c: &Config, other: &Config| {
        c.personalities
            .iter()
            .filter(|p| other.personalities.iter().any(|q| q.name == p.name))
            .map(|p| (p.name.clone(), p.sections.clone(), p.tail_check, p.refresh))
            .collect::<Vec<_>>()
    };
    let mut tables = Vec::new();
    for (table, same) in [
        ("[service]", old.service == new.service),
        ("[storage]", old.storage == new.storage),
        ("[rate_limit]", old.rate_limit == new.rate_limit),
        ("[sync]", old.sync == new.sync),
        ("[discover]", old.discover == new.discover),
        ("[daemon]", unscheduled(old) == unscheduled(new)),
        ("[log]", old.log == new.log),
        ("[archive]", old.archive == new.archive),
        ("[[personality]]", kept(old, new) == kept(new, old)),
    ] {
        if !same {
            tables.push(table);
        }
    }
    tables
}

impl fmt::Display for Changes {
    /// `nothing changed`, or the changes joined by `; `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("added: {}", self.added.join(", ")));
        }
        if !self.removed.is_empty() {
            parts.push(format!("removed: {}", self.removed.join(", ")));
        }
        if !self.rescheduled.is_empty() {
            parts.push(format!("schedule changed: {}", self.rescheduled.join(", ")));
        }
        if !self.settings.is_empty() {
            parts.push(format!("settings changed: {}", self.settings.join(", ")));
        }
        if self.cookie {
            parts.push("a new session cookie".to_owned());
        }
        if parts.is_empty() {
            f.write_str("nothing changed")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let base = "[service]\nbase_url = \"http://127.0.0.1:1\"\njargon = \"shapes\"\ncookie_file = \"cookie\"\n\
                    [storage]\ndata_dir = \"data\"\n";
        Config::from_toml_str(
            &format!("{base}{text}"),
            std::path::Path::new("/etc/chatkeep/config.toml"),
        )
        .expect("test config is valid")
    }

    #[test]
    fn the_same_config_changes_nothing() {
        let text = "[daemon]\ninterval = \"30s\"\n[[personality]]\nname = \"one\"\n";
        let changes = Changes::between(&config(text), &config(text));
        assert_eq!(changes, Changes::default());
        assert_eq!(changes.to_string(), "nothing changed");
        assert!(!changes.touches_schedules());
    }

    #[test]
    fn added_removed_and_rescheduled_are_named_once() {
        let old = config(
            "[daemon]\ninterval = \"30s\"\n\
             [[personality]]\nname = \"one\"\nschedule = \"0 0 * * * *\"\n\
             [[personality]]\nname = \"two\"\nschedule = \"0 0 * * * *\"\n\
             [[personality]]\nname = \"three\"\n",
        );
        let new = config(
            "[daemon]\ninterval = \"1m\"\narchive_schedule = \"0 0 3 * * *\"\n\
             [[personality]]\nname = \"one\"\n\
             [[personality]]\nname = \"three\"\nschedule = \"0 0 * * * *\"\n\
             [[personality]]\nname = \"four\"\nschedule = \"0 0 * * * *\"\n",
        );
        let changes = Changes::between(&old, &new);
        assert_eq!(changes.added, ["four"]);
        assert_eq!(changes.removed, ["two"]);
        assert_eq!(changes.rescheduled, ["archive", "default", "one", "three"]);
        assert!(changes.settings.is_empty(), "{:?}", changes.settings);
        assert_eq!(
            changes.to_string(),
            "added: four; removed: two; schedule changed: archive, default, one, three"
        );
    }

    #[test]
    fn other_settings_are_named_by_table() {
        let old = config("[daemon]\nworkers = 2\n[[personality]]\nname = \"one\"\n");
        let new = config(
            "[daemon]\nworkers = 3\n[rate_limit]\nrequests_per_second = 0.5\n\
             [[personality]]\nname = \"one\"\ntail_check = \"1d\"\n",
        );
        let changes = Changes::between(&old, &new);
        assert!(!changes.touches_schedules());
        assert_eq!(
            changes.to_string(),
            "settings changed: [rate_limit], [daemon], [[personality]]"
        );
    }
}
