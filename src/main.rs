// async-graphql nests one future per field level; the response tier's
// recording reads added a level, past the default limit of 128.
#![recursion_limit = "256"]

use biblio::app::{shutdown_signal, Application};
use biblio::cli::{
    CacheCommand, Cli, Command, DocumentsCommand, MigrateArgs, SeedArgs, ServeArgs, UserCommand,
};
use biblio::error::BoxError;
use biblio::redact::Secrets;
use biblio::telemetry::LogFormat;
use biblio::user_cli::{self, Console, NewAccount};
use biblio::{cache_cli, graphql, seed, startup, telemetry};
use std::io::Write;

/// A request allocates and frees many small objects (futures, response
/// values); mimalloc does that faster than the system allocator (see
/// BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Writes the CLI's own output to stdout. Rust ignores SIGPIPE, so once a
/// reader has gone (`biblio schema | head -1`) a write fails with EPIPE,
/// which `println!` would turn into a panic; here it is an error that
/// `main` answers with a quiet exit.
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)
    };
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse_command_line();
    let format = cli.log_format;
    // Kept to the end: dropping it writes out the lines still queued.
    let logs = telemetry::init(format);
    match run(cli).await {
        Ok(()) => {}
        // Whoever read our output has stopped reading: nobody is left to
        // tell, and what was asked for is done.
        Err(err) if is_broken_pipe(&err) => {}
        Err(err) => {
            fail(format, &err);
            // `exit` runs no destructor: the last lines (this error's, with
            // JSON logs) are written out first.
            drop(logs);
            std::process::exit(1);
        }
    }
}

/// Reports the error that ends the process, once: as a plain `error:` line,
/// or with `--log-format json` as one log event, so a log pipeline reads it
/// like every other line. Any password given in a URL is masked, in case a
/// driver quoted its connection string.
fn fail(format: LogFormat, err: &BoxError) {
    let message = err.to_string();
    let message = Secrets::of_this_process().scrub(&message).into_owned();
    match format {
        LogFormat::Json => tracing::error!(error = %message, "biblio stopped"),
        // Written with errors ignored: stderr may be closed too.
        LogFormat::Text => {
            let _ = writeln!(std::io::stderr().lock(), "error: {message}");
        }
    }
}

fn is_broken_pipe(err: &BoxError) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|err| err.kind() == std::io::ErrorKind::BrokenPipe)
}

async fn run(cli: Cli) -> Result<(), BoxError> {
    let database_url = cli.database_url;
    match cli.command {
        None => serve(cli.serve, database_url).await?,
        Some(Command::Serve(args)) => serve(args, database_url).await?,
        Some(Command::Migrate(MigrateArgs { repair })) => {
            let db = startup::open_database(&database_url).await?;
            if repair {
                db.repair_and_migrate().await?;
            } else {
                db.migrate().await?;
            }
            say!("migrations applied")?;
        }
        Some(Command::Seed(args)) => seed(&database_url, args).await?,
        Some(Command::Schema) => write!(std::io::stdout().lock(), "{}", graphql::sdl())?,
        Some(Command::User(command)) => user(&database_url, command).await?,
        Some(Command::Cache(CacheCommand::Warm(args))) => {
            cache_cli::warm(&database_url, args).await?
        }
        Some(Command::Cache(CacheCommand::Clear(args))) => {
            cache_cli::clear(&database_url, args).await?
        }
        Some(Command::Cache(CacheCommand::Stats(args))) => {
            cache_cli::stats(&database_url, args).await?
        }
        Some(Command::Documents(DocumentsCommand::Add { file })) => {
            let json = std::fs::read_to_string(&file)
                .map_err(|err| format!("{}: {err}", file.display()))?;
            let db = startup::open_database(&database_url).await?;
            db.migrate().await?;
            let report = graphql::persisted::manifest::add(&db, &json).await?;
            say!(
                "{:?} manifest: {} added, {} already present",
                report.format,
                report.added,
                report.present
            )?;
        }
    }
    Ok(())
}

async fn serve(args: ServeArgs, database_url: String) -> Result<(), BoxError> {
    let config = args.into_config(database_url);
    let app = Application::build(&config).await?;
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}

async fn user(database_url: &str, command: UserCommand) -> Result<(), BoxError> {
    if let UserCommand::EmailHash { email } = &command {
        say!("{}", biblio::auth::throttle::email_hash(email))?;
        return Ok(());
    }
    let console = Console::new();
    // The database first: nobody should type a password only to learn
    // that it cannot be stored.
    let db = startup::open_database(database_url).await?;
    db.migrate().await?;
    match command {
        UserCommand::Add { email, name, role } => {
            let account = NewAccount {
                email,
                name,
                role: role.map(Into::into),
            };
            let user = user_cli::add(&db, &console, account).await?;
            say!("added {} ({:?}) with id {}", user.email, user.role, user.id)?;
        }
        UserCommand::Role { email, role } => {
            let role = role.into();
            let before = user_cli::set_role(&db, &email, role).await?;
            if before.role == role {
                say!("{} was already {role:?}", before.email)?;
            } else {
                say!("{} is now {role:?} (was {:?})", before.email, before.role)?;
            }
        }
        UserCommand::Password { email } => {
            let user = user_cli::reset_password(&db, &console, &email).await?;
            say!("new password set for {}", user.email)?;
        }
        UserCommand::Remove { email } => {
            let (user, loans) = user_cli::remove(&db, &email).await?;
            say!(
                "removed {} ({:?}) and {loans} returned loan{} of theirs",
                user.email,
                user.role,
                if loans == 1 { "" } else { "s" }
            )?;
        }
        UserCommand::EmailHash { .. } => unreachable!("answered before the database is opened"),
    }
    Ok(())
}

async fn seed(database_url: &str, args: SeedArgs) -> Result<(), BoxError> {
    let db = startup::open_database(database_url).await?;
    db.migrate().await?;
    let plan = seed::Plan {
        authors: args.authors,
        books: args.books,
        members: args.members,
        borrows: args.borrows,
        seed: args.seed,
    };
    let existing = match (args.reset, args.include_users) {
        (false, _) => seed::Existing::Refuse,
        (true, false) => seed::Existing::Replace,
        (true, true) => seed::Existing::ReplaceWithUsers,
    };
    let passwords = match &args.password_for_all {
        Some(password) => seed::Passwords::same(password),
        None => seed::Passwords::random(),
    };
    let started = std::time::Instant::now();
    let bar = biblio::progress::Bar::new();
    let report = seed::run_with_progress(&db, &plan, existing, &passwords, |done, total, doing| {
        bar.draw(done, total, doing)
    })
    .await;
    bar.finish();
    let report = report?;
    say!(
        "seeded {} authors, {} categories, {} books, {} members, {} borrows ({} active) in {:.1?}",
        plan.authors,
        report.categories,
        plan.books,
        plan.members,
        plan.borrows,
        report.active_borrows,
        started.elapsed()
    )?;
    say!("{}", report.accounts(&passwords))?;
    Ok(())
}
