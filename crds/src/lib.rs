//! Tollgate's model: the resources users apply, the compiled table the proxies serve, and the
//! compiler between them. Pure: no I/O, no clock, no Kubernetes client.

pub mod compile;
pub mod crd;
pub mod load;
pub mod resources;
pub mod snapshot;
pub mod table;
pub mod usage;
