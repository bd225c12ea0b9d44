//! Which endpoint a path names.
//!
//! Routing is done by hand rather than with axum's router because the
//! jargon is a runtime value, and because every request, including unknown
//! ones, must pass the same recording, fault and cookie steps first.

/// An endpoint of the service, with the personality key its path carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route<'a> {
    /// `/api/users/me`
    Me,
    /// `/api/{jargon}?category=...`
    List,
    /// `/api/{jargon}/username/{slug}`
    Profile { slug: &'a str },
    /// `/api/memory/{id}`
    Memory { id: &'a str },
    /// `/api/{jargon}/{id}/story`
    Knowledge { id: &'a str },
    /// `/api/{jargon}/{id}/training`
    Training { id: &'a str },
    /// `/api/{jargon}/{id}/user`
    UserSettings { id: &'a str },
    /// `/api/{jargon}/{id}/chat/history`
    ChatHistory { id: &'a str },
    /// Anything else, including the right shape under the wrong jargon.
    Unknown,
}

/// How a path names a personality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PersonalityKey<'a> {
    Slug(&'a str),
    Id(&'a str),
}

impl<'a> Route<'a> {
    pub(super) fn parse(path: &'a str, jargon: &str) -> Route<'a> {
        let Some(rest) = path.strip_prefix("/api/") else {
            return Route::Unknown;
        };
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Route::Unknown;
        }
        match segments.as_slice() {
            ["users", "me"] => Route::Me,
            ["memory", id] => Route::Memory { id },
            [j] if *j == jargon => Route::List,
            [j, "username", slug] if *j == jargon => Route::Profile { slug },
            [j, id, "story"] if *j == jargon => Route::Knowledge { id },
            [j, id, "training"] if *j == jargon => Route::Training { id },
            [j, id, "user"] if *j == jargon => Route::UserSettings { id },
            [j, id, "chat", "history"] if *j == jargon => Route::ChatHistory { id },
            _ => Route::Unknown,
        }
    }

    pub(super) fn personality(&self) -> Option<PersonalityKey<'a>> {
        match *self {
            Route::Profile { slug } => Some(PersonalityKey::Slug(slug)),
            Route::Memory { id }
            | Route::Knowledge { id }
            | Route::Training { id }
            | Route::UserSettings { id }
            | Route::ChatHistory { id } => Some(PersonalityKey::Id(id)),
            Route::Me | Route::List | Route::Unknown => None,
        }
    }

    pub(super) fn is_chat(&self) -> bool {
        matches!(self, Route::ChatHistory { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_routes() {
        let parse = |path| Route::parse(path, "shapes");
        assert_eq!(parse("/api/users/me"), Route::Me);
        assert_eq!(parse("/api/shapes"), Route::List);
        assert_eq!(
            parse("/api/shapes/username/lilith"),
            Route::Profile { slug: "lilith" }
        );
        assert_eq!(parse("/api/memory/abc"), Route::Memory { id: "abc" });
        assert_eq!(parse("/api/shapes/abc/story"), Route::Knowledge { id: "abc" });
        assert_eq!(parse("/api/shapes/abc/training"), Route::Training { id: "abc" });
        assert_eq!(parse("/api/shapes/abc/user"), Route::UserSettings { id: "abc" });
        assert_eq!(
            parse("/api/shapes/abc/chat/history"),
            Route::ChatHistory { id: "abc" }
        );
        assert_eq!(parse("/api/agents/abc/chat/history"), Route::Unknown);
        assert_eq!(parse("/api/shapes/abc/chat/history/"), Route::Unknown);
        assert_eq!(parse("/shapes/abc/story"), Route::Unknown);
    }
}
