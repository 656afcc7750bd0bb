//! The command line. Every option also reads an environment variable, so a
//! deployment can configure by either.
use crate::config::Config;
use crate::graphql::Limits;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "biblio",
    version,
    about = "A cache-backed GraphQL service for a library's catalogue"
)]
pub struct Cli {
    /// Database to use: sqlite://FILE?mode=rwc or postgres://...
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://biblio.db?mode=rwc",
        global = true
    )]
    pub database_url: String,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the GraphQL API (the default command).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Fill the database with a deterministic demo data set.
    Seed(SeedArgs),
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BIBLIO_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Redis for the shared cache tier.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Deepest query nesting accepted.
    #[arg(long, env = "BIBLIO_MAX_DEPTH", default_value_t = 10)]
    pub max_depth: usize,
    /// Highest query complexity accepted (each field costs 1; a page multiplies
    /// what is inside it by its page size).
    #[arg(long, env = "BIBLIO_MAX_COMPLEXITY", default_value_t = 5000)]
    pub max_complexity: usize,
    /// Largest request body, in bytes; larger ones get 413.
    #[arg(long, env = "BIBLIO_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,
    /// Length of a loan, in days.
    #[arg(long, env = "BIBLIO_LOAN_DAYS", default_value_t = 14)]
    pub loan_days: u32,
    /// Lifetime of an access token, in hours.
    #[arg(long, env = "BIBLIO_TOKEN_TTL_HOURS", default_value_t = 24)]
    pub token_ttl_hours: u64,
    /// How long a DataLoader gathers keys before it queries, in microseconds.
    #[arg(long, env = "BIBLIO_LOADER_DELAY_US", default_value_t = 1000)]
    pub loader_delay_us: u64,
    /// Do not seed a small demo data set into an empty database.
    #[arg(long, env = "BIBLIO_NO_DEMO_DATA")]
    pub no_demo_data: bool,
}

impl Default for ServeArgs {
    /// The defaults, with environment variables applied.
    fn default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            serve: ServeArgs,
        }
        Defaults::parse_from(["biblio"]).serve
    }
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
    /// Delete existing data first (otherwise a non-empty database is refused).
    #[arg(long)]
    pub reset: bool,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value_t = RoleArg::Member)]
        role: RoleArg,
    },
}

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

impl ServeArgs {
    pub fn into_config(self, database_url: String) -> Config {
        Config {
            bind: self.bind,
            database_url,
            redis_url: self.redis_url,
            limits: Limits {
                max_depth: self.max_depth,
                max_complexity: self.max_complexity,
            },
            body_limit: self.body_limit,
            loan_period: chrono::Duration::days(i64::from(self.loan_days)),
            token_ttl: Duration::from_secs(self.token_ttl_hours * 3600),
            loader_delay: Duration::from_micros(self.loader_delay_us),
            demo_data_when_empty: !self.no_demo_data,
        }
    }
}
