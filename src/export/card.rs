//! `--format character-card`: the personality as a Character Card V2
//! (`chara_card_v2`, the card SillyTavern and other frontends import),
//! mapped from the stored profile, knowledge and training documents.
//!
//! Each card field takes the first of its profile fields the profile holds
//! as a non-empty string ([`FIELDS`]); knowledge items become the entries
//! of `character_book`, training questions and answers the example
//! dialogue (`mes_example`). Every profile field that found no place in the
//! card is kept, byte for byte in value, under `data.extensions.chatkeep`;
//! so is every field of a knowledge item that found none in its entry,
//! under the entry's `extensions.chatkeep`. Texts are data: written as
//! JSON strings, never altered. The documents are small (a profile, a few
//! hundred items), so they are read whole.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;

/// A JSON object whose values are kept as received (numbers such as `2.50`
/// included), in the order of their keys.
pub type RawObject = BTreeMap<String, Box<RawValue>>;

/// The card fields that are text, and the profile fields each may come
/// from, the likeliest first.
pub const FIELDS: &[(&str, &[&str])] = &[
    ("name", &["name"]),
    ("description", super::profile::DESCRIPTION_FIELDS),
    ("personality", &["personality"]),
    ("scenario", &["scenario"]),
    (
        "first_mes",
        &["first_mes", "first_message", "initial_message", "greeting"],
    ),
    (
        "mes_example",
        &["mes_example", "example_dialogue", "example_messages"],
    ),
    ("creator_notes", &["creator_notes"]),
    ("system_prompt", super::profile::SYSTEM_PROMPT_FIELDS),
    ("post_history_instructions", &["post_history_instructions"]),
    ("creator", &["creator", "creator_name"]),
    ("character_version", &["character_version"]),
];

/// The card fields that are lists of text, and their profile fields.
pub const LIST_FIELDS: &[(&str, &[&str])] = &[
    ("alternate_greetings", &["alternate_greetings"]),
    ("tags", &["tags"]),
];

#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("the stored profile is not a JSON object: {0}")]
    Profile(String),
}

/// A Character Card V2.
#[derive(Debug, Serialize)]
pub struct Card {
    spec: &'static str,
    spec_version: &'static str,
    pub data: Data,
}

#[derive(Debug, Serialize)]
pub struct Data {
    pub name: String,
    pub description: String,
    pub personality: String,
    pub scenario: String,
    pub first_mes: String,
    pub mes_example: String,
    pub creator_notes: String,
    pub system_prompt: String,
    pub post_history_instructions: String,
    pub alternate_greetings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub character_book: Option<Book>,
    pub tags: Vec<String>,
    pub creator: String,
    pub character_version: String,
    pub extensions: Extensions,
}

/// `{"chatkeep": {...}}`: what has no place elsewhere.
#[derive(Debug, Default, Serialize)]
pub struct Extensions {
    pub chatkeep: RawObject,
}

#[derive(Debug, Serialize)]
pub struct Book {
    name: String,
    extensions: Extensions,
    pub entries: Vec<BookEntry>,
}

#[derive(Debug, Serialize)]
pub struct BookEntry {
    keys: Vec<String>,
    content: String,
    extensions: Extensions,
    enabled: bool,
    insertion_order: u64,
    case_sensitive: bool,
    name: String,
    id: u64,
    comment: String,
    selective: bool,
    secondary_keys: Vec<String>,
    /// Always inserted: an entry without keys would never be.
    constant: bool,
    position: &'static str,
}

/// The card of a personality: `profile` is the stored profile (`None`
/// without one: the card then holds `slug` as its name), `knowledge` and
/// `training` the stored documents (an array, or `{"items": [...]}`).
pub fn build(
    slug: &str,
    profile: Option<&[u8]>,
    knowledge: Option<&[u8]>,
    training: Option<&[u8]>,
) -> Result<Card, CardError> {
    let mut rest: RawObject = match profile {
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| CardError::Profile(e.to_string()))?,
        None => RawObject::new(),
    };
    let mut text = BTreeMap::new();
    for (field, sources) in FIELDS {
        let value = take_text(&mut rest, sources).unwrap_or_default();
        text.insert(*field, value);
    }
    let mut lists = BTreeMap::new();
    for (field, sources) in LIST_FIELDS {
        lists.insert(*field, take_list(&mut rest, sources).unwrap_or_default());
    }
    let mut get = |field: &str| text.remove(field).unwrap_or_default();
    let name = Some(get("name"))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| slug.to_owned());
    let mut mes_example = get("mes_example");
    for (question, answer) in items(training)
        .iter()
        .filter_map(|item| question_and_answer(item))
    {
        if !mes_example.is_empty() {
            mes_example.push('\n');
        }
        mes_example.push_str(&format!(
            "<START>\n{{{{user}}}}: {question}\n{{{{char}}}}: {answer}"
        ));
    }
    let entries: Vec<BookEntry> = items(knowledge)
        .iter()
        .enumerate()
        .map(|(i, item)| book_entry(i as u64, item))
        .collect();
    let character_book = (!entries.is_empty()).then(|| Book {
        name: format!("{name}'s knowledge"),
        extensions: Extensions::default(),
        entries,
    });
    let mut list = |field: &str| lists.remove(field).unwrap_or_default();
    Ok(Card {
        spec: "chara_card_v2",
        spec_version: "2.0",
        data: Data {
            description: get("description"),
            personality: get("personality"),
            scenario: get("scenario"),
            first_mes: get("first_mes"),
            mes_example,
            creator_notes: get("creator_notes"),
            system_prompt: get("system_prompt"),
            post_history_instructions: get("post_history_instructions"),
            alternate_greetings: list("alternate_greetings"),
            character_book,
            tags: list("tags"),
            creator: get("creator"),
            character_version: get("character_version"),
            name,
            extensions: Extensions { chatkeep: rest },
        },
    })
}

impl Card {
    /// The card as compact JSON.
    pub fn to_json(&self) -> String {
        // A struct of strings, lists and raw JSON values always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Removes from `rest` the first of `sources` that holds a non-empty
/// string, and returns it; the others stay.
fn take_text(rest: &mut RawObject, sources: &[&str]) -> Option<String> {
    let found = sources.iter().find_map(|source| {
        let raw = rest.get(*source)?;
        let text: String = serde_json::from_str(raw.get()).ok()?;
        (!text.trim().is_empty()).then_some((*source, text))
    })?;
    rest.remove(found.0);
    Some(found.1)
}

/// Removes from `rest` the first of `sources` that holds a list of strings.
fn take_list(rest: &mut RawObject, sources: &[&str]) -> Option<Vec<String>> {
    let found = sources.iter().find_map(|source| {
        let raw = rest.get(*source)?;
        let list: Vec<String> = serde_json::from_str(raw.get()).ok()?;
        Some((*source, list))
    })?;
    rest.remove(found.0);
    Some(found.1)
}

/// The items of a stored document: an array, or the array under `items`.
fn items(document: Option<&[u8]>) -> Vec<Box<RawValue>> {
    let Some(bytes) = document else {
        return Vec::new();
    };
    if let Ok(items) = serde_json::from_slice::<Vec<Box<RawValue>>>(bytes) {
        return items;
    }
    #[derive(serde::Deserialize)]
    struct Wrapped {
        items: Vec<Box<RawValue>>,
    }
    serde_json::from_slice::<Wrapped>(bytes).map_or_else(|_| Vec::new(), |w| w.items)
}

/// A training item's question and answer, under the names seen.
fn question_and_answer(item: &RawValue) -> Option<(String, String)> {
    let mut fields: RawObject = serde_json::from_str(item.get()).ok()?;
    let question = take_text(&mut fields, &["question", "prompt", "input", "user"])?;
    let answer = take_text(&mut fields, &["answer", "response", "output", "assistant"])?;
    Some((question, answer))
}

/// A knowledge item as a lorebook entry: its text the content, its title
/// its name (and only key, unless it has keys of its own). A text item is
/// its content; any other item is kept whole under `extensions.chatkeep`.
fn book_entry(i: u64, item: &RawValue) -> BookEntry {
    let mut fields: RawObject = serde_json::from_str(item.get()).unwrap_or_else(|_| {
        let mut whole = RawObject::new();
        whole.insert("item".to_owned(), item.to_owned());
        whole
    });
    let content = serde_json::from_str::<String>(item.get())
        .ok()
        .or_else(|| take_text(&mut fields, &["content", "text", "body", "story", "value"]))
        .unwrap_or_default();
    if fields.len() == 1 && fields.contains_key("item") && !content.is_empty() {
        fields.clear();
    }
    let title = take_text(&mut fields, &["title", "name"]).unwrap_or_default();
    let keys = take_list(&mut fields, &["keys", "keywords", "triggers"])
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| {
            if title.is_empty() {
                Vec::new()
            } else {
                vec![title.clone()]
            }
        });
    let enabled = fields
        .get("enabled")
        .and_then(|raw| serde_json::from_str::<bool>(raw.get()).ok());
    if enabled.is_some() {
        fields.remove("enabled");
    }
    let enabled = enabled.unwrap_or(true);
    BookEntry {
        constant: keys.is_empty(),
        keys,
        content,
        extensions: Extensions { chatkeep: fields },
        enabled,
        insertion_order: i,
        case_sensitive: false,
        comment: title.clone(),
        name: title,
        id: i,
        selective: false,
        secondary_keys: Vec::new(),
        position: "before_char",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmapped_fields_are_kept_as_received_and_mapped_ones_once() {
        let profile = br#"{"name":"Lilith","prompt":"You are <b>Lilith</b>","search_description":"A witch","description":"","engine":{"t":2.50,"e":1e-7},"tags":["a","b"],"first_mes":7}"#;
        let knowledge = br#"{"items":[{"id":"k1","title":"Lore","content":"Text"},"plain",{"keys":["x"],"content":"y","enabled":false}]}"#;
        let training = br#"[{"question":"Q?","answer":"A."},{"other":1}]"#;
        let card = build("lilith", Some(profile), Some(knowledge), Some(training)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&card.to_json()).unwrap();
        let data = &json["data"];
        assert_eq!(json["spec"], "chara_card_v2");
        assert_eq!(data["name"], "Lilith");
        assert_eq!(data["system_prompt"], "You are <b>Lilith</b>");
        assert_eq!(data["description"], "A witch");
        assert_eq!(data["tags"], serde_json::json!(["a", "b"]));
        assert_eq!(data["mes_example"], "<START>\n{{user}}: Q?\n{{char}}: A.");
        assert_eq!(data["first_mes"], "");
        // Not text: kept. An empty description: kept. Numbers as received.
        let text = card.to_json();
        assert!(text.contains(r#""engine":{"t":2.50,"e":1e-7}"#), "{text}");
        let kept = &data["extensions"]["chatkeep"];
        assert_eq!(kept["first_mes"], 7);
        assert_eq!(kept["description"], "");
        assert!(kept.get("prompt").is_none() && kept.get("name").is_none());
        let entries = data["character_book"]["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0]["keys"], serde_json::json!(["Lore"]));
        assert_eq!(
            entries[0]["extensions"]["chatkeep"],
            serde_json::json!({"id": "k1"})
        );
        assert_eq!(entries[1]["content"], "plain");
        assert_eq!(entries[1]["constant"], true);
        assert_eq!(entries[2]["enabled"], false);
        assert_eq!(entries[2]["keys"], serde_json::json!(["x"]));
    }

    #[test]
    fn without_a_profile_the_card_is_named_by_the_slug() {
        let card = build("lilith", None, None, None).unwrap();
        assert_eq!(card.data.name, "lilith");
        assert!(card.data.character_book.is_none());
        assert!(build("x", Some(b"[1]"), None, None).is_err());
    }
}
