//! Input rules for accounts, one function per input. The server is the authority; the browser
//! may call the same functions for instant feedback.

use crate::error::AppError;
use crate::model::{MESSAGE_MAX_CHARS, PAGE_DEFAULT, PAGE_MAX};

pub const NAME_MAX_CHARS: usize = 100;
pub const EMAIL_MAX_CHARS: usize = 254;
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Argon2 takes any length, but hashing megabytes on request is a denial-of-service lever.
pub const PASSWORD_MAX_CHARS: usize = 256;

/// A display name: trimmed, 1..=100 characters, no control characters.
pub fn name(raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(AppError::invalid("name", "please enter your name"));
    }
    if name.chars().count() > NAME_MAX_CHARS {
        return Err(AppError::invalid("name", format!("a name has at most {NAME_MAX_CHARS} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::invalid("name", "a name cannot contain control characters"));
    }
    Ok(name.to_owned())
}

/// A contact search: trimmed; empty means no search.
pub fn search(raw: Option<&str>) -> Result<Option<String>, AppError> {
    let search = raw.map(str::trim).unwrap_or_default();
    if search.chars().count() > NAME_MAX_CHARS {
        return Err(AppError::invalid("search", format!("a search has at most {NAME_MAX_CHARS} characters")));
    }
    if search.chars().any(char::is_control) {
        return Err(AppError::invalid("search", "a search cannot contain control characters"));
    }
    Ok((!search.is_empty()).then(|| search.to_owned()))
}

/// An email address, trimmed and lower-cased (so uniqueness is case-insensitive).
/// Deliberately loose: one `@`, something on each side, a dot in the domain, no spaces.
pub fn email(raw: &str) -> Result<String, AppError> {
    // Bytes first: no work proportional to a megabyte of input before it is refused.
    if raw.trim().len() > EMAIL_MAX_CHARS * 4 {
        return Err(AppError::invalid("email", "that email address is too long"));
    }
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err(AppError::invalid("email", "please enter your email address"));
    }
    if email.chars().count() > EMAIL_MAX_CHARS {
        return Err(AppError::invalid("email", "that email address is too long"));
    }
    let well_formed = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if !well_formed {
        return Err(AppError::invalid("email", "that does not look like an email address"));
    }
    Ok(email)
}

/// A new password and its confirmation.
pub fn new_password(password: &str, confirmation: &str) -> Result<(), AppError> {
    let len = password.chars().count();
    if len < PASSWORD_MIN_CHARS {
        return Err(AppError::invalid(
            "password",
            format!("a password needs at least {PASSWORD_MIN_CHARS} characters"),
        ));
    }
    if len > PASSWORD_MAX_CHARS {
        return Err(AppError::invalid("password", format!("a password has at most {PASSWORD_MAX_CHARS} characters")));
    }
    if password != confirmation {
        return Err(AppError::invalid("password_confirmation", "the two passwords do not match"));
    }
    Ok(())
}

/// A message body: line endings normalised to `\n`, trimmed at the ends, not empty, at most
/// [`MESSAGE_MAX_CHARS`] characters, and no control characters but newline and tab.
pub fn message_body(raw: &str) -> Result<String, AppError> {
    let body = raw.replace("\r\n", "\n").replace('\r', "\n");
    let body = body.trim();
    if body.is_empty() {
        return Err(AppError::invalid("body", "a message cannot be empty"));
    }
    let chars = body.chars().count();
    if chars > MESSAGE_MAX_CHARS {
        return Err(AppError::invalid(
            "body",
            format!("a message has at most {MESSAGE_MAX_CHARS} characters (this one has {chars})"),
        ));
    }
    if body.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(AppError::invalid("body", "a message cannot contain control characters"));
    }
    Ok(body.to_owned())
}

/// The browser-made id of a message: 1 to 64 letters, digits or dashes (a UUID fits).
pub fn client_id(raw: &str) -> Result<String, AppError> {
    let id = raw.trim();
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(AppError::invalid("client_id", "client_id must be 1 to 64 letters, digits or dashes"));
    }
    Ok(id.to_owned())
}

/// A page size: unset means [`PAGE_DEFAULT`]; 1 to [`PAGE_MAX`].
pub fn page_limit(limit: Option<u32>) -> Result<u64, AppError> {
    match limit.unwrap_or(PAGE_DEFAULT) {
        n @ 1..=PAGE_MAX => Ok(u64::from(n)),
        _ => Err(AppError::invalid("limit", format!("limit must be between 1 and {PAGE_MAX}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: AppError) -> String {
        match err {
            AppError::Invalid { field: Some(f), .. } => f,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("  Alice Liddell ").unwrap(), "Alice Liddell");
        assert_eq!(field_of(name("   ").unwrap_err()), "name");
        assert!(name(&"x".repeat(NAME_MAX_CHARS)).is_ok());
        assert!(name(&"x".repeat(NAME_MAX_CHARS + 1)).is_err());
        assert!(name("bell\u{7}").is_err());
    }

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(email(" Alice@Example.COM ").unwrap(), "alice@example.com");
        for bad in ["", "alice", "alice@", "@example.com", "a@b", "a b@example.com", "a@@example.com", "a@example.com."]
        {
            assert_eq!(field_of(email(bad).unwrap_err()), "email", "{bad:?} should be rejected");
        }
    }

    #[test]
    fn passwords_need_length_and_a_matching_confirmation() {
        assert!(new_password("correct horse", "correct horse").is_ok());
        assert_eq!(field_of(new_password("short", "short").unwrap_err()), "password");
        assert_eq!(field_of(new_password("12345678", "12345679").unwrap_err()), "password_confirmation");
        // Counted in characters, not bytes.
        assert_eq!(field_of(new_password("ééé", "ééé").unwrap_err()), "password");
        let long = "p".repeat(PASSWORD_MAX_CHARS + 1);
        assert!(new_password(&long, &long).is_err());
    }

    #[test]
    fn message_bodies() {
        assert_eq!(message_body("  hi there \r\nsecond line\t \n").unwrap(), "hi there \nsecond line");
        assert_eq!(field_of(message_body(" \n\t ").unwrap_err()), "body");
        assert!(message_body(&"é".repeat(MESSAGE_MAX_CHARS)).is_ok());
        let err = message_body(&"a".repeat(MESSAGE_MAX_CHARS + 1)).unwrap_err();
        assert_eq!(err.to_string(), "a message has at most 5000 characters (this one has 5001)");
        assert!(message_body("nul\0byte").is_err());
        assert!(message_body("bell\u{7}").is_err());
        assert_eq!(message_body("<img src=x onerror=alert(1)>").unwrap(), "<img src=x onerror=alert(1)>");
    }

    #[test]
    fn client_ids_and_page_limits() {
        assert!(client_id("0b6c2f0e-8a3b-4c1d-9e2f-1a2b3c4d5e6f").is_ok());
        assert!(client_id("").is_err());
        assert!(client_id("has space").is_err());
        assert!(client_id(&"a".repeat(65)).is_err());
        assert_eq!(page_limit(None).unwrap(), 50);
        assert_eq!(page_limit(Some(100)).unwrap(), 100);
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(101)).is_err());
    }
}
