//! What the formats that carry a personality elsewhere read from its stored
//! profile (the service's profile object, kept as received).

use serde_json::Value;

/// The profile fields that can hold the personality's system prompt, the
/// likeliest first: the service calls it `prompt`; other deployments and
/// earlier exports name it otherwise.
pub const SYSTEM_PROMPT_FIELDS: &[&str] = &["system_prompt", "prompt"];
/// The fields that describe the personality, when it has no prompt.
pub const DESCRIPTION_FIELDS: &[&str] = &["description", "search_description"];

/// The first of `fields` that `profile` holds as a non-empty string, and
/// its name.
pub fn first_text<'a>(profile: &'a Value, fields: &[&'static str]) -> Option<(&'static str, &'a str)> {
    fields.iter().find_map(|field| {
        profile
            .get(field)
            .and_then(Value::as_str)
            .filter(|text| !text.trim().is_empty())
            .map(|text| (*field, text))
    })
}

/// The personality's system prompt for fine-tuning: its prompt, else its
/// description; `None` when the profile has neither.
pub fn system_prompt(profile: &Value) -> Option<&str> {
    first_text(profile, SYSTEM_PROMPT_FIELDS)
        .or_else(|| first_text(profile, DESCRIPTION_FIELDS))
        .map(|(_, text)| text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_prompt_is_the_prompt_else_the_description() {
        let profile = serde_json::json!({"prompt": "You are Lilith.", "search_description": "A witch"});
        assert_eq!(system_prompt(&profile), Some("You are Lilith."));
        let profile = serde_json::json!({"prompt": "  ", "search_description": "A witch"});
        assert_eq!(system_prompt(&profile), Some("A witch"));
        assert_eq!(system_prompt(&serde_json::json!({"prompt": 3})), None);
    }
}
