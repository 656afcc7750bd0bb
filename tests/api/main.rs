//! Black-box tests: each spawns the service on a random port with a database
//! of its own (SQLite by default; PostgreSQL with BIBLIO_TEST_DATABASE=postgres)
//! and talks to it over HTTP.
mod abuse;
mod auth;
mod binary;
mod borrowing;
mod browser;
mod cache;
mod cache_commands;
mod catalogue;
mod cli;
mod connections;
mod costs;
mod dashboard;
mod differential;
mod domain_input;
mod faults;
mod helpers;
mod history;
mod http;
mod invalidation;
mod limits;
mod logs;
mod metrics;
mod migrations;
mod persisted;
mod responses;
mod schema;
mod search_index;
mod seed;
mod startup;
mod stats;
mod stdio;
mod tallies;
mod tls;
mod users;
mod writes;
