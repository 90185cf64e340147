//! The alerting benchmarks alone: `cargo run --release -p kestrel-alert --example bench`
//! (the same as `kestrel bench alerts`, without building the whole server).

#[tokio::main]
async fn main() -> Result<(), kestrel_alert::AlertError> {
    kestrel_alert::bench::run().await
}
