//! What the overlay says of a message, as one number: the digest of its
//! record (first version if stored late, each later version with the time
//! it was seen, the deletion mark). Every document of a message carries
//! the digest of the record it was indexed from (0: none), so that a
//! catch-up finds which messages the overlay changed by comparing the
//! records with the index, without the overlay the index was made from,
//! and indexes those messages again rather than the whole personality.

use sha2::{Digest, Sha256};

use crate::store::Entry;
use crate::store::chat::overlay::Record;

/// The digest of a record: never 0.
fn digest(late_first: Option<&str>, revisions: &[(&str, &str)], deleted_at: Option<&str>) -> u64 {
    let mut hash = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    match late_first {
        Some(first) => part(first.as_bytes()),
        None => part(b"-"),
    }
    for (seen_at, message) in revisions {
        part(seen_at.as_bytes());
        part(message.as_bytes());
    }
    match deleted_at {
        Some(at) => part(at.as_bytes()),
        None => part(b"-"),
    }
    let bytes: [u8; 8] = hash.finalize()[..8].try_into().expect("8 bytes of 32");
    u64::from_le_bytes(bytes).max(1)
}

/// The digest of an overlay record.
pub(super) fn of_record(record: &Record) -> u64 {
    let revisions: Vec<(&str, &str)> = record
        .revisions
        .iter()
        .map(|r| (r.seen_at.as_str(), r.message.as_str()))
        .collect();
    digest(
        record.first.as_deref(),
        &revisions,
        record.deleted_upstream_at.as_deref(),
    )
}

/// The digest of the record an entry was merged from (0: none). The
/// same as [`of_record`] of that record: version `k + 1` was seen when
/// version `k` was superseded.
pub(super) fn of_entry(entry: &Entry) -> u64 {
    let Some(story) = &entry.story else {
        return 0;
    };
    let earlier = &story.earlier;
    let versions: Vec<&str> = earlier
        .iter()
        .map(|v| v.message.as_str())
        .chain(std::iter::once(entry.message.as_str()))
        .collect();
    let revisions: Vec<(&str, &str)> = earlier
        .iter()
        .zip(&versions[1..])
        .map(|(v, message)| (v.superseded_at.as_str(), *message))
        .collect();
    let first = story.late.then(|| versions[0]);
    digest(first, &revisions, story.deleted_upstream_at.as_deref())
}
