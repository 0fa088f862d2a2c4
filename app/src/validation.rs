//! Input rules for accounts, one function per input. The server is the authority; the browser
//! may call the same functions for instant feedback.

use crate::error::AppError;

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

/// An email address, trimmed and lower-cased (so uniqueness is case-insensitive).
/// Deliberately loose: one `@`, something on each side, a dot in the domain, no spaces.
pub fn email(raw: &str) -> Result<String, AppError> {
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
        return Err(AppError::invalid(
            "password",
            format!("a password has at most {PASSWORD_MAX_CHARS} characters"),
        ));
    }
    if password != confirmation {
        return Err(AppError::invalid("password_confirmation", "the two passwords do not match"));
    }
    Ok(())
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
        for bad in ["", "alice", "alice@", "@example.com", "a@b", "a b@example.com", "a@@example.com", "a@example.com."] {
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
}
