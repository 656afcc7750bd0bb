//! The command line. Every option also reads an environment variable, so a
//! deployment can configure by either.
use crate::cache::{Mode, Settings, Ttls};
use crate::config::Config;
use crate::graphql::Limits;
use crate::http::MetricsAuth;
use crate::telemetry::LogFormat;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::sync::LazyLock;

mod serve;

pub use serve::ServeArgs;
use std::time::Duration;

pub use crate::config::DEFAULT_DATABASE_URL;

/// What `--help` shows and an unset flag gets: [`Config::default`].
static DEFAULTS: LazyLock<Config> = LazyLock::new(Config::default);

/// An `on`/`off` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl From<bool> for Switch {
    fn from(on: bool) -> Self {
        if on {
            Self::On
        } else {
            Self::Off
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "biblio",
    version,
    about = "A cache-backed GraphQL service for a library's catalogue",
    override_usage = "biblio [OPTIONS]                 serve, the default command\n       \
                      biblio <COMMAND> [OPTIONS]",
    after_help = "Without a command, biblio serves: `biblio --bind 0.0.0.0:8080` is `biblio serve --bind 0.0.0.0:8080`."
)]
pub struct Cli {
    /// Database to use: sqlite://FILE?mode=rwc or postgres://...
    // The environment's value is not shown in --help: it may hold a password.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = DEFAULT_DATABASE_URL,
        global = true
    )]
    pub database_url: String,

    /// How log lines are written to standard error: `text` for people,
    /// `json` (one object per line) for log pipelines.
    #[arg(
        long,
        env = "BIBLIO_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,

    /// `serve`'s options, for `biblio` without a command.
    #[command(flatten, next_help_heading = "Options of serve (the default command)")]
    pub serve: ServeArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// Parses the command line, or exits with clap's usage error. `serve`'s
    /// options are accepted without the word `serve`, but not before a
    /// command, where they would be silently ignored (clap's
    /// `args_conflicts_with_subcommands` would refuse `--database-url`
    /// there too, which every command takes).
    pub fn parse_command_line() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let mut command = Self::command();
        let matches = command.get_matches_mut();
        if let Some((name, _)) = matches.subcommand() {
            let serve = ServeArgs::augment_args(clap::Command::new("serve"));
            for arg in serve.get_arguments() {
                let id = arg.get_id().as_str();
                if matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine) {
                    let flag = arg.get_long().unwrap_or(id);
                    command
                        .error(
                            clap::error::ErrorKind::ArgumentConflict,
                            format!(
                                "--{flag} is an option of `serve`: it cannot come before `{name}`"
                            ),
                        )
                        .exit();
                }
            }
        }
        Self::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
    }
}

#[derive(Subcommand, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per process: boxing the serve options would save nothing"
)]
pub enum Command {
    /// Serve the GraphQL API (the default command).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(MigrateArgs),
    /// Fill the database with a deterministic demo data set.
    Seed(SeedArgs),
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage trusted documents (persisted queries registered ahead of time).
    #[command(subcommand)]
    Documents(DocumentsCommand),
    /// Operate this deployment's cache: warm it ahead of clients, clear it,
    /// show its stats.
    #[command(subcommand)]
    Cache(CacheCommand),
}

#[derive(Args, Debug, Clone)]
pub struct MigrateArgs {
    /// First drop the tables of migrations that are not recorded as applied
    /// (left by an older biblio interrupted while migrating), if none of
    /// them holds a row; with data at stake nothing is changed.
    #[arg(long)]
    pub repair: bool,
}

#[derive(Args, Debug, Clone)]
pub struct SeedArgs {
    #[arg(long, default_value_t = 2000)]
    pub authors: usize,
    #[arg(long, default_value_t = 10_000)]
    pub books: usize,
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    #[arg(long, default_value_t = 30_000)]
    pub borrows: usize,
    /// The same seed always yields the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Delete existing data first (otherwise a non-empty database is
    /// refused). Accounts the seed did not make (by `biblio user add` or
    /// `register`) are kept out of it: with any, it is refused unless
    /// --include-users is given too.
    #[arg(long)]
    pub reset: bool,
    /// With --reset, delete accounts the seed did not make as well.
    #[arg(long, requires = "reset")]
    pub include_users: bool,
    /// One password for every seeded account, for benchmarks and scripts
    /// that sign in (at least 8 characters). By default each run draws
    /// random passwords and prints them.
    #[arg(
        long,
        env = "BIBLIO_SEED_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub password_for_all: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user. On a terminal, what the flags leave out is asked for
    /// (the password twice, without echo); otherwise --email and --name are
    /// needed and the password is the first line of standard input.
    Add {
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// The role; asked for on a terminal, `member` otherwise.
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
    },
    /// Set a user's role; it applies to their next request.
    Role {
        /// The user's e-mail.
        email: String,
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Set a new password for a user: asked twice on a terminal, otherwise
    /// the first line of standard input.
    Password {
        /// The user's e-mail.
        email: String,
    },
    /// Remove a user and their returned loans. Refused while one of their
    /// loans is out: return it first.
    Remove {
        /// The user's e-mail.
        email: String,
    },
    /// Print the hash an e-mail is logged by (`email_hash` in sign-in
    /// warnings), to find one account's lines. Needs no database.
    EmailHash {
        /// The e-mail, in any case.
        email: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum DocumentsCommand {
    /// Register a client's documents from a manifest: Apollo's
    /// (`generate-persisted-query-manifest`) or The Guild's (`{"<hash>":
    /// "<document>"}`). Every document is validated first; a manifest with
    /// a bad one registers nothing.
    Add {
        /// The manifest, a JSON file.
        file: std::path::PathBuf,
    },
}

/// `biblio cache ...`.
#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// Fill Redis with what clients read most.
    ///
    /// Every category, the statistics, the first page of authors, the
    /// first pages of the default book list and the books lent most often,
    /// with the authors and categories they show and their book counts, read
    /// as the service reads them. Entries already in Redis are left as they
    /// are. Prints what was stored; shows progress on a terminal.
    Warm(WarmArgs),
    /// Clear this deployment's cache on every replica at once.
    ///
    /// Its Redis entries become unreachable and every replica drops its
    /// in-process cache as the event reaches it; then the old entries are
    /// removed from Redis and counted. Other deployments' keys on the same
    /// Redis are never touched.
    Clear(ClearArgs),
    /// Print every replica's cache stats and the total, from the snapshots
    /// the replicas publish to Redis, with Redis's own figures. Needs no
    /// replica running (a stopped replica's snapshot expires after a few
    /// seconds).
    Stats(StatsArgs),
}

/// Which deployment's cache a `cache` command works on. Every other
/// setting (TTLs, timeouts, limits) is read from the same environment
/// variables as `serve`, so a command run in a deployment's environment
/// writes exactly what its replicas would.
#[derive(Args, Debug, Clone)]
pub struct CacheArgs {
    /// The deployment's Redis (as for `serve`).
    #[arg(
        long,
        env = "REDIS_URL",
        hide_env_values = true,
        default_value_t = DEFAULTS.cache.redis_url.clone()
    )]
    pub redis_url: String,
    /// PEM file of the CA certificates a `rediss://` server's certificate
    /// must chain to (as for `serve`).
    #[arg(long, env = "BIBLIO_REDIS_CA_FILE")]
    pub redis_ca_file: Option<std::path::PathBuf>,
    /// The deployment's key prefix, if `serve` is given one; by default it
    /// is read from the database (`biblio-<deployment id>`).
    #[arg(long, env = "BIBLIO_CACHE_PREFIX")]
    pub cache_prefix: Option<String>,
}

impl CacheArgs {
    /// The configuration `serve` would run with in this environment, on
    /// this deployment's Redis and prefix.
    pub fn into_config(self, database_url: String) -> Config {
        ServeArgs {
            redis_url: self.redis_url,
            redis_ca_file: self.redis_ca_file,
            cache_prefix: self.cache_prefix,
            ..ServeArgs::default()
        }
        .into_config(database_url)
    }
}

#[derive(Args, Debug, Clone)]
pub struct WarmArgs {
    /// Pages of the default book list to warm, from the first.
    #[arg(long, default_value_t = crate::warm::Plan::default().book_pages)]
    pub pages: u32,
    /// Their size. It is part of each page's key, so warm the size clients
    /// ask for (the schema's default is 20).
    #[arg(long, default_value_t = crate::warm::Plan::default().page_size,
          value_parser = clap::value_parser!(u32).range(1..=crate::domain::MAX_PAGE_SIZE as i64))]
    pub page_size: u32,
    /// How many of the books lent most often to warm.
    #[arg(long, default_value_t = crate::warm::Plan::default().most_borrowed)]
    pub most_borrowed: u64,
    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ClearArgs {
    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Args, Debug, Clone)]
pub struct StatsArgs {
    /// Print JSON, for scripts, instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// `entity::user::Role` as a command-line value. clap's `ValueEnum` cannot be
/// derived on the entity's enum from here (both are foreign to this crate)
/// and the entity crate should not depend on clap, so this mirror and its
/// `From` remain.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum RoleArg {
    Member,
    Librarian,
}

impl From<RoleArg> for entity::user::Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Member => Self::Member,
            RoleArg::Librarian => Self::Librarian,
        }
    }
}
