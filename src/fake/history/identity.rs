//! From a message to its id and back.
//!
//! A generated message's id is a function of its generator index, which the
//! id's last group carries verbatim (`MessageGenerator::message_id`), so an
//! id leads back to its message without a table. A pushed message's id is
//! whatever its JSON says; pushes are few, so their overlay is searched.

use std::borrow::Cow;
use std::collections::HashSet;

use serde::Deserialize;

use super::History;

/// Just the `id` of a pushed message, if it is a string.
#[derive(Deserialize)]
struct IdField<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

impl History {
    /// The id of the message at `position`; empty for a pushed message
    /// without a string `id`.
    pub(in crate::fake) fn id_at(&self, position: usize) -> String {
        let index = self.generators[position];
        match self.raw.get(&index) {
            Some(raw) => raw_id(raw).unwrap_or_default(),
            None => self.generator.message_id(index as usize),
        }
    }

    /// The position of the message with this generator index, if it is
    /// still in the history (a linear scan).
    pub(super) fn position_of(&self, index: u32) -> Option<usize> {
        self.generators.iter().position(|&g| g == index)
    }

    /// The generator index of the *generated* message this id names, if
    /// one was ever made (it may have been deleted since).
    pub(super) fn generated_with_id(&self, id: &str) -> Option<u32> {
        let tail = id.rsplit('-').next()?;
        if tail.len() != 12 {
            return None;
        }
        let index = u32::try_from(u64::from_str_radix(tail, 16).ok()?).ok()?;
        let made = index < self.next_generator && !self.raw.contains_key(&index);
        (made && self.generator.message_id(index as usize) == id).then_some(index)
    }

    /// The generator indices of every message, generated or pushed, whose
    /// id is one of `ids` (deleted ones included).
    pub(super) fn generators_with_ids(&self, ids: &[&str]) -> HashSet<u32> {
        let wanted: HashSet<&str> = ids.iter().copied().collect();
        let pushed = self
            .raw
            .iter()
            .filter(|(_, raw)| raw_id(raw).is_some_and(|id| wanted.contains(id.as_str())))
            .map(|(&index, _)| index);
        let generated = wanted.iter().filter_map(|id| self.generated_with_id(id));
        pushed.chain(generated).collect()
    }
}

/// The string `id` of a pushed message, if it has one.
fn raw_id(raw: &str) -> Option<String> {
    let field: IdField<'_> = serde_json::from_str(raw).ok()?;
    field.id.map(Cow::into_owned)
}
