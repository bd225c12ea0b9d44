//! Which URLs a stored message or profile points to, and the kind of each.

use serde::Deserialize;

use super::MediaUrl;

/// What a URL is for; each kind can be switched off (`[media]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// A message's `attachment_url`.
    Attachment,
    /// A message's `voice_reply_url`.
    Voice,
    /// The profile's `avatar_url` (or `avatar`).
    Avatar,
}

/// One place that points to a URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MediaRef {
    pub url: MediaUrl,
    pub kind: MediaKind,
    /// The message's id as stored (its JSON text: a string id keeps its
    /// quotes); `None` for the avatar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Deserialize)]
struct MessageFields<'a> {
    #[serde(borrow, default)]
    id: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    attachment_url: Option<serde_json::Value>,
    #[serde(default)]
    voice_reply_url: Option<serde_json::Value>,
}

/// The media a stored message line points to: nothing for a line that does
/// not parse or whose URL fields are not strings.
pub fn of_message(line: &str) -> Vec<MediaRef> {
    let Ok(fields) = serde_json::from_str::<MessageFields>(line) else {
        return Vec::new();
    };
    let message = fields.id.map(|id| id.get().to_owned());
    [
        (fields.attachment_url, MediaKind::Attachment),
        (fields.voice_reply_url, MediaKind::Voice),
    ]
    .into_iter()
    .filter_map(|(value, kind)| match value {
        Some(serde_json::Value::String(url)) if !url.trim().is_empty() => Some(MediaRef {
            url: MediaUrl::new(url),
            kind,
            message: message.clone(),
        }),
        _ => None,
    })
    .collect()
}

/// The avatar a profile points to (`avatar_url`, else `avatar`), if any.
pub fn of_profile(profile: &str) -> Option<MediaRef> {
    let value: serde_json::Value = serde_json::from_str(profile).ok()?;
    let url = ["avatar_url", "avatar"]
        .iter()
        .find_map(|key| value.get(key).and_then(|v| v.as_str()))
        .filter(|url| !url.trim().is_empty())?;
    Some(MediaRef {
        url: MediaUrl::new(url),
        kind: MediaKind::Avatar,
        message: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_points_to_its_attachment_and_voice_reply() {
        let line =
            r#"{"id":"m1","attachment_url":"https://c/a.png","voice_reply_url":"https://c/v.mp3","ts":1.0}"#;
        let refs = of_message(line);
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].kind, MediaKind::Attachment);
        assert_eq!(refs[1].url.as_str(), "https://c/v.mp3");
        assert_eq!(refs[0].message.as_deref(), Some("\"m1\""));
        assert!(of_message(r#"{"id":2,"attachment_url":null,"voice_reply_url":7}"#).is_empty());
        assert!(of_message("not json").is_empty());
    }

    #[test]
    fn a_profile_points_to_its_avatar() {
        assert_eq!(
            of_profile(r#"{"avatar_url":"https://c/me.png"}"#)
                .unwrap()
                .url
                .as_str(),
            "https://c/me.png"
        );
        assert_eq!(
            of_profile(r#"{"avatar":"https://c/x.png"}"#).unwrap().kind,
            MediaKind::Avatar
        );
        assert!(of_profile(r#"{"avatar_url":null}"#).is_none());
    }
}
