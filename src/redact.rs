//! Secrets kept out of what is printed and logged. Database and Redis URLs
//! may carry a password (`postgres://app:secret@db/biblio`); [`url`] shows
//! one with the password replaced, and [`Secrets::scrub`] removes the
//! passwords this process was given from any text, such as a driver's error
//! that quotes its connection string.
use std::borrow::Cow;

/// What replaces a password.
const MASK: &str = "***";

/// Query parameters that carry a password in some drivers' URLs.
const PASSWORD_PARAMETERS: &[&str] = &["password", "pass", "pwd", "sentinelpassword"];

/// `url` with its password (in the userinfo, or a `password=` query
/// parameter) replaced by `***`; the user name, host and path are kept, as
/// they are what an operator needs to see. Text that is not a URL is
/// returned as it is.
pub fn url(url: &str) -> Cow<'_, str> {
    let spans = password_spans(url);
    if spans.is_empty() {
        return Cow::Borrowed(url);
    }
    let mut redacted = String::with_capacity(url.len());
    let mut last = 0;
    for (start, end) in spans {
        redacted.push_str(&url[last..start]);
        redacted.push_str(MASK);
        last = end;
    }
    redacted.push_str(&url[last..]);
    Cow::Owned(redacted)
}

/// Byte ranges of the passwords in `url`, in order.
fn password_spans(url: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let Some(scheme_end) = url.find("://") else {
        return spans;
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    // The userinfo ends at the last `@`: a password may contain one.
    if let Some(at) = authority.rfind('@') {
        if let Some(colon) = authority[..at].find(':') {
            if colon + 1 < at {
                spans.push((authority_start + colon + 1, authority_start + at));
            }
        }
    }
    if let Some(query_start) = url[authority_end..].find('?') {
        let query_start = authority_end + query_start + 1;
        let query_end = url[query_start..]
            .find('#')
            .map_or(url.len(), |i| query_start + i);
        let mut position = query_start;
        for pair in url[query_start..query_end].split('&') {
            if let Some((name, value)) = pair.split_once('=') {
                if !value.is_empty() && PASSWORD_PARAMETERS.contains(&name.to_lowercase().as_str())
                {
                    let value_start = position + name.len() + 1;
                    spans.push((value_start, value_start + value.len()));
                }
            }
            position += pair.len() + 1;
        }
    }
    spans
}

/// The passwords in `url`, as written and percent-decoded.
fn passwords_in(url: &str) -> Vec<String> {
    let mut passwords = Vec::new();
    for (start, end) in password_spans(url) {
        let written = &url[start..end];
        let decoded = percent_decode(written);
        if decoded != written {
            passwords.push(decoded);
        }
        passwords.push(written.to_owned());
    }
    passwords
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&high), Some(&low)) if hex(high).is_some() && hex(low).is_some() => {
                decoded.push((hex(high).unwrap_or(0) * 16 + hex(low).unwrap_or(0)) as u8);
                i += 3;
            }
            (byte, _, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The passwords found in some URLs, to scrub from text about to be shown.
#[derive(Debug, Default, Clone)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// The passwords of every URL among `values` (command-line arguments,
    /// environment variables); values that are not URLs add nothing.
    pub fn from_values<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut secrets: Vec<String> = values
            .into_iter()
            .flat_map(|value| passwords_in(value.as_ref()))
            .collect();
        // Longest first, so a password that contains another is masked whole.
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        secrets.dedup();
        Self(secrets)
    }

    /// The passwords in this process's arguments and in the environment
    /// variables that hold URLs.
    pub fn of_this_process() -> Self {
        let environment = ["DATABASE_URL", "REDIS_URL"]
            .into_iter()
            .filter_map(|name| std::env::var(name).ok());
        Self::from_values(std::env::args().chain(environment))
    }

    /// `text` with every one of these passwords replaced by `***`.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for secret in &self.0 {
            if text.contains(secret.as_str()) {
                text = Cow::Owned(text.replace(secret.as_str(), MASK));
            }
        }
        text
    }
}

/// Parses a secret flag's value for clap (`--operator-token`,
/// `--token-signing-key`). Its own parser because clap's error for a
/// refused value repeats the value, and a refused secret is still
/// someone's: the error is `flag: why`, where `why` is the value's
/// `FromStr` error, which never repeats it.
pub struct SecretParser<T> {
    flag: &'static str,
    of: std::marker::PhantomData<fn() -> T>,
}

impl<T> SecretParser<T> {
    /// A parser whose errors name `flag`.
    pub const fn new(flag: &'static str) -> Self {
        Self {
            flag,
            of: std::marker::PhantomData,
        }
    }
}

impl<T> Clone for SecretParser<T> {
    fn clone(&self) -> Self {
        Self::new(self.flag)
    }
}

impl<T> clap::builder::TypedValueParser for SecretParser<T>
where
    T: std::str::FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let refuse = |kind, why: &str| {
            clap::Error::raw(kind, format!("{}: {why}\n", self.flag)).with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse(clap::error::ErrorKind::InvalidUtf8, "it must be UTF-8"))?;
        text.parse()
            .map_err(|why: String| refuse(clap::error::ErrorKind::InvalidValue, &why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_userinfo_is_masked_and_the_rest_kept() {
        assert_eq!(
            url("postgres://app:s3cret@db.example.org:5432/biblio"),
            "postgres://app:***@db.example.org:5432/biblio"
        );
        assert_eq!(
            url("redis://:p@ss:word@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            url("rediss://default:pw@cache:6380"),
            "rediss://default:***@cache:6380"
        );
    }

    #[test]
    fn urls_without_a_password_are_unchanged() {
        for plain in [
            "sqlite://biblio.db?mode=rwc",
            "postgres://postgres@127.0.0.1:5432/test",
            "redis://127.0.0.1:6379",
            "sqlite::memory:",
            "not a url",
        ] {
            assert_eq!(url(plain), plain);
        }
    }

    #[test]
    fn a_password_query_parameter_is_masked() {
        assert_eq!(
            url("postgres://db/biblio?user=app&password=s3cret&sslmode=require"),
            "postgres://db/biblio?user=app&password=***&sslmode=require"
        );
        assert_eq!(
            url("postgres://app:a@db/x?PASSWORD=b"),
            "postgres://app:***@db/x?PASSWORD=***"
        );
    }

    #[test]
    fn a_sentinel_urls_passwords_for_the_primary_and_the_sentinels_are_masked() {
        assert_eq!(
            url("redis-sentinel://app:one@a:26379,b:26379/0?sentinelServiceName=m&sentinelPassword=two"),
            "redis-sentinel://app:***@a:26379,b:26379/0?sentinelServiceName=m&sentinelPassword=***"
        );
    }

    #[test]
    fn scrubbing_removes_passwords_as_written_and_decoded() {
        let secrets = Secrets::from_values([
            "--database-url",
            "postgres://app:p%40ss@db/biblio",
            "redis://:hunter2@cache",
        ]);
        let message = "cannot connect with postgres://app:p%40ss@db/biblio (password p@ss); \
                       redis said hunter2";
        let scrubbed = secrets.scrub(message);
        assert!(!scrubbed.contains("p@ss"), "{scrubbed}");
        assert!(!scrubbed.contains("p%40ss"), "{scrubbed}");
        assert!(!scrubbed.contains("hunter2"), "{scrubbed}");
        assert!(
            scrubbed.contains("postgres://app:***@db/biblio"),
            "{scrubbed}"
        );
    }
}
