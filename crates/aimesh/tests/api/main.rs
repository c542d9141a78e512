//! Black-box tests of the mesh: each starts the real server on port 0 over a throwaway SQLite
//! or PostgreSQL database and talks to it through generated tonic clients.

#![allow(clippy::unwrap_used)]

mod admin;
mod conversation;
mod dynamic;
mod events;
mod faults;
mod files;
mod gallery;
mod helpers;
mod identity;
mod jobs;
mod models;
mod notes;
mod processing;
mod reports;
mod server;
mod speech;
mod sweep;
mod tasks;
mod tenancy;
