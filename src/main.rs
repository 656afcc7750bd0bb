// async-graphql nests one future per field level; the response tier's
// recording reads added a level, past the default limit of 128.
#![recursion_limit = "256"]

use biblio::app::{shutdown_signal, Application};
use biblio::cache::{self, Change};
use biblio::cli::{
    CacheCommand, Cli, Command, DocumentsCommand, MigrateArgs, SeedArgs, ServeArgs, UserCommand,
};
use biblio::db::Db;
use biblio::domain::{required_text, Email, Password};
use biblio::error::BoxError;
use biblio::{auth, db, graphql, seed, telemetry};
use clap::Parser;
use std::io::{BufRead, Write};

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
    let cli = Cli::parse();
    telemetry::init();
    match run(cli).await {
        Ok(()) => {}
        // Whoever read our output has stopped reading: nobody is left to
        // tell, and what was asked for is done.
        Err(err) if is_broken_pipe(&err) => {}
        Err(err) => {
            tracing::error!(error = %err, "biblio failed");
            // Written with errors ignored: stderr may be closed too.
            let _ = writeln!(std::io::stderr().lock(), "error: {err}");
            std::process::exit(1);
        }
    }
}

fn is_broken_pipe(err: &BoxError) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|err| err.kind() == std::io::ErrorKind::BrokenPipe)
}

async fn run(cli: Cli) -> Result<(), BoxError> {
    match cli
        .command
        .unwrap_or_else(|| Command::Serve(ServeArgs::default()))
    {
        Command::Serve(args) => {
            let config = args.into_config(cli.database_url);
            let app = Application::build(&config).await?;
            app.run_until_stopped(shutdown_signal()).await?;
        }
        Command::Migrate(MigrateArgs { repair }) => {
            let db = Db::connect(&cli.database_url).await?;
            if repair {
                db.repair_and_migrate().await?;
            } else {
                db.migrate().await?;
            }
            say!("migrations applied")?;
        }
        Command::Seed(args) => seed(&cli.database_url, args).await?,
        Command::Schema => write!(std::io::stdout().lock(), "{}", graphql::sdl())?,
        Command::User(UserCommand::Add { email, name, role }) => {
            let email = Email::parse(&email)?;
            let name = required_text(&name, "name", 200)?;
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            let password = Password::parse(password.trim_end_matches(['\r', '\n']))?;
            let db = Db::connect(&cli.database_url).await?;
            db.migrate().await?;
            let hash = auth::hash_password(password).await?;
            // Recorded in the outbox like any write, so running replicas
            // forget a cached absence of this user within the outbox delay.
            let write = db.begin_write().await?;
            let user = db::users::create(&write, &email, name, hash, role.into()).await?;
            let invalidation = Change::UserCreated { id: user.id }.invalidation();
            write.commit(Some(&invalidation.to_outbox())).await?;
            say!("added {} ({:?}) with id {}", user.email, user.role, user.id)?;
        }
        Command::Cache(CacheCommand::Stats(args)) => {
            let prefix = args.target.prefix(&cli.database_url).await?;
            let deployment = cache::stats::read(&args.target.connection(), &prefix).await?;
            if args.json {
                say!("{}", serde_json::to_string_pretty(&deployment.report())?)?;
            } else {
                write!(std::io::stdout().lock(), "{deployment}")?;
            }
        }
        Command::Documents(DocumentsCommand::Add { file }) => {
            let json = std::fs::read_to_string(&file)
                .map_err(|err| format!("{}: {err}", file.display()))?;
            let db = Db::connect(&cli.database_url).await?;
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

async fn seed(database_url: &str, args: SeedArgs) -> Result<(), BoxError> {
    let db = Db::connect(database_url).await?;
    db.migrate().await?;
    let plan = seed::Plan {
        authors: args.authors,
        books: args.books,
        members: args.members,
        borrows: args.borrows,
        seed: args.seed,
    };
    let started = std::time::Instant::now();
    let report = seed::run(&db, &plan, args.reset).await?;
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
    say!(
        "librarian: {} / {}",
        seed::LIBRARIAN_EMAIL,
        seed::LIBRARIAN_PASSWORD
    )?;
    say!(
        "members:   member1@biblio.test .. member{}@biblio.test / {}",
        plan.members,
        seed::MEMBER_PASSWORD
    )?;
    Ok(())
}
