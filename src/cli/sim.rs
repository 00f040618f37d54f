//! `patrol sim`: serves the simulated tenant until interrupted.

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
}

pub async fn run(_args: SimArgs) -> anyhow::Result<()> {
    anyhow::bail!("the simulated tenant is not built yet")
}
