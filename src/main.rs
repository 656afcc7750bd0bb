use biblio::app::{shutdown_signal, Application};
use biblio::cache::Change;
use biblio::cli::{Cli, Command, SeedArgs, ServeArgs, UserCommand};
use biblio::db::Db;
use biblio::domain::{required_text, Email, Password};
use biblio::error::BoxError;
use biblio::{auth, db, graphql, seed, telemetry};
use clap::Parser;
use std::io::BufRead;

/// A request allocates and frees many small objects (futures, response
/// values); mimalloc does that faster than the system allocator (see
/// BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    telemetry::init();
    if let Err(err) = run(cli).await {
        tracing::error!(error = %err, "biblio failed");
        eprintln!("error: {err}");
        std::process::exit(1);
    }
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
        Command::Migrate => {
            Db::connect(&cli.database_url).await?.migrate().await?;
            println!("migrations applied");
        }
        Command::Seed(args) => seed(&cli.database_url, args).await?,
        Command::Schema => print!("{}", graphql::sdl()),
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
            println!("added {} ({:?}) with id {}", user.email, user.role, user.id);
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
    println!(
        "seeded {} authors, {} categories, {} books, {} members, {} borrows ({} active) in {:.1?}",
        plan.authors,
        report.categories,
        plan.books,
        plan.members,
        plan.borrows,
        report.active_borrows,
        started.elapsed()
    );
    println!(
        "librarian: {} / {}",
        seed::LIBRARIAN_EMAIL,
        seed::LIBRARIAN_PASSWORD
    );
    println!(
        "members:   member1@biblio.test .. member{}@biblio.test / {}",
        plan.members,
        seed::MEMBER_PASSWORD
    );
    Ok(())
}
