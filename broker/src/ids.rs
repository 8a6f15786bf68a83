//! Identifiers as Kafka writes them: topic and cluster ids, topic names. Imports nothing
//! of the crate, so every layer (the log included) can use it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

/// A UUID as Kafka prints it: URL-safe base64 without padding (22 characters).
pub fn kafka_uuid_string(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

pub fn parse_kafka_uuid(text: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    Uuid::from_slice(&bytes).ok()
}

/// A new random topic or cluster id, never the all-zero id (Kafka's "no id") or one
/// whose string starts with '-' (Kafka avoids those so ids work as CLI arguments).
pub fn new_id() -> Uuid {
    loop {
        let id = Uuid::new_v4();
        if !id.is_nil() && !kafka_uuid_string(id).starts_with('-') {
            return id;
        }
    }
}

/// Why a topic name is refused (Kafka's rules), or `None` if it is legal.
pub fn invalid_topic_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("topic name cannot be {name:?}"));
    }
    if name.len() > 249 {
        return Some(format!(
            "topic name is {} characters; the limit is 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "topic name {name:?} contains {c:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    None
}
