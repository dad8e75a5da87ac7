//! The floor a hyper-based proxy stands on, for `bench/proxy.sh`: a hyper HTTP/1 server and
//! hyper-util's pooled client on a current-thread runtime, forwarding every request to one
//! backend with its path's first segment dropped (`/bench/hello` -> `/hello`), and nothing
//! else: no routing table, no access log, no metrics, no limits. Not a product; it tells how
//! much of Tollgate's cost per request is hyper's and how much is Tollgate's own.
//!
//!   hyper_floor LISTEN_ADDR BACKEND_ADDR

use std::net::SocketAddr;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::http::uri::Authority;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type Body = http_body_util::combinators::BoxBody<hyper::body::Bytes, hyper::Error>;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args.next().expect("listen address").parse()?;
    let backend: SocketAddr = args.next().expect("backend address").parse()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(listen, backend))
}

async fn serve(listen: SocketAddr, backend: SocketAddr) -> anyhow::Result<()> {
    let client: Client<_, Incoming> = Client::builder(TokioExecutor::new()).build_http();
    let authority = Authority::try_from(backend.to_string())?;
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (client, authority) = (client.clone(), authority.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (client, authority) = (client.clone(), authority.clone());
                async move {
                    let (mut parts, body) = req.into_parts();
                    let path = parts.uri.path();
                    let rest = path
                        .get(1..)
                        .and_then(|p| p.find('/'))
                        .map(|i| &path[i + 1..]);
                    parts.uri = Uri::builder()
                        .scheme("http")
                        .authority(authority)
                        .path_and_query(rest.unwrap_or("/"))
                        .build()?;
                    let response = client.request(Request::from_parts(parts, body)).await?;
                    anyhow::Ok(response.map(|b| -> Body { b.boxed() }))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
