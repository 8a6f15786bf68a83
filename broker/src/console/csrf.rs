//! CSRF protection for the console's actions: a double-submit token. The token lives in
//! an HttpOnly, SameSite=Strict cookie scoped to /ui and is repeated in every form; an
//! action is done only when both agree and, when the browser names an Origin, it is
//! this console's own. Another site can neither read the cookie nor set it.

pub const COOKIE: &str = "runnel_csrf";

/// A new random token (122 random bits, hex).
pub fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The token in a `Cookie` header, if it is one this console could have issued.
pub fn from_cookies(header: Option<&str>) -> Option<String> {
    header?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `Set-Cookie` value that issues `token`.
pub fn set_cookie(token: &str) -> String {
    format!("{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict")
}

/// Compares without an early exit, so timing does not tell how much matched.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Why an action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NoCookie,
    NoToken,
    Mismatch,
    ForeignOrigin,
}

impl Refusal {
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::NoCookie => "the request carries no console cookie (reload the page)",
            Refusal::NoToken => "the form carries no CSRF token",
            Refusal::Mismatch => "the form's CSRF token is not this browser's (reload the page)",
            Refusal::ForeignOrigin => "the request comes from another site",
        }
    }
}

/// Checks an action: cookie token, form token and Origin (against `host`, the request's
/// Host header, already checked against the allowed hosts).
pub fn check(
    cookie: Option<&str>,
    form_token: Option<&str>,
    origin: Option<&str>,
    host: &str,
) -> Result<(), Refusal> {
    let cookie = cookie.ok_or(Refusal::NoCookie)?;
    let token = form_token
        .filter(|t| !t.is_empty())
        .ok_or(Refusal::NoToken)?;
    if !same(cookie, token) {
        return Err(Refusal::Mismatch);
    }
    if let Some(origin) = origin {
        let own = ["http://", "https://"]
            .iter()
            .any(|scheme| origin.eq_ignore_ascii_case(&format!("{scheme}{host}")));
        if !own {
            return Err(Refusal::ForeignOrigin);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_read_back_from_cookies() {
        let a = new_token();
        assert_ne!(a, new_token());
        let header = format!(
            "other=1; {}",
            set_cookie(&a).split(';').next().unwrap_or("")
        );
        assert_eq!(from_cookies(Some(&header)), Some(a));
        assert_eq!(from_cookies(Some("runnel_csrf=short")), None);
        assert_eq!(from_cookies(None), None);
    }

    #[test]
    fn actions_need_matching_tokens_and_an_own_origin() {
        let t = new_token();
        assert_eq!(check(Some(&t), Some(&t), None, "localhost:9097"), Ok(()));
        assert_eq!(
            check(
                Some(&t),
                Some(&t),
                Some("http://localhost:9097"),
                "localhost:9097"
            ),
            Ok(())
        );
        assert_eq!(check(None, Some(&t), None, "h"), Err(Refusal::NoCookie));
        assert_eq!(check(Some(&t), None, None, "h"), Err(Refusal::NoToken));
        assert_eq!(check(Some(&t), Some(""), None, "h"), Err(Refusal::NoToken));
        assert_eq!(
            check(Some(&t), Some(&new_token()), None, "h"),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            check(
                Some(&t),
                Some(&t),
                Some("http://evil.example"),
                "localhost:9097"
            ),
            Err(Refusal::ForeignOrigin)
        );
        assert_eq!(
            check(Some(&t), Some(&t), Some("null"), "localhost:9097"),
            Err(Refusal::ForeignOrigin)
        );
    }
}
