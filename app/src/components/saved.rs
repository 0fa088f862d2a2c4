//! What this browser keeps for a person between page loads (localStorage): drafts and the outbox
//! per conversation, and the notification choices. Keys carry the user's id, so two accounts
//! signed in one after the other in the same browser never see each other's drafts. On the
//! server's build nothing is kept: these run in effects and event handlers, in the browser.

use crate::model::ConversationRef;

/// `banter-{what}-{user}-{conversation}`, e.g. `banter-draft-7-u12`.
pub fn key(what: &str, me: i64, conversation: ConversationRef) -> String {
    format!("banter-{what}-{me}-{}", conversation.key())
}

/// The conversation a key made by [`key`] names, if it is `what` of user `me`.
pub fn conversation_of(key: &str, what: &str, me: i64) -> Option<ConversationRef> {
    ConversationRef::from_key(key.strip_prefix(&format!("banter-{what}-{me}-"))?)
}

#[cfg(feature = "hydrate")]
fn storage() -> Option<web_sys::Storage> {
    leptos::prelude::window().local_storage().ok().flatten()
}

/// The value kept under `key`.
pub fn read(key: &str) -> Option<String> {
    #[cfg(feature = "hydrate")]
    return storage()?.get_item(key).ok().flatten();
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = key;
        None
    }
}

/// Keeps `value` under `key`; an empty value removes the key.
pub fn write(key: &str, value: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(storage) = storage() {
        let _ = if value.is_empty() { storage.remove_item(key) } else { storage.set_item(key, value) };
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (key, value);
}

/// Every key that starts with `prefix`.
pub fn keys(prefix: &str) -> Vec<String> {
    #[cfg(feature = "hydrate")]
    if let Some(storage) = storage() {
        let count = storage.length().unwrap_or(0);
        return (0..count).filter_map(|i| storage.key(i).ok().flatten()).filter(|k| k.starts_with(prefix)).collect();
    }
    let _ = prefix;
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_person_and_the_conversation() {
        let k = key("draft", 7, ConversationRef::Group(12));
        assert_eq!(k, "banter-draft-7-g12");
        assert_eq!(conversation_of(&k, "draft", 7), Some(ConversationRef::Group(12)));
        assert_eq!(conversation_of(&k, "draft", 8), None, "someone else's");
        assert_eq!(conversation_of(&k, "outbox", 7), None);
        assert_eq!(conversation_of("banter-draft-7-x", "draft", 7), None);
    }
}
